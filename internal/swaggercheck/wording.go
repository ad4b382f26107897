package swaggercheck

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pascalCase is the certification rule for operationId: no separators, leading capital.
var pascalCase = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// minorWords may stay lower case inside a Title Case label ("Date of Birth"), never first.
var minorWords = map[string]bool{
	"a": true, "an": true, "the": true,
	"and": true, "or": true, "nor": true, "but": true,
	"as": true, "at": true, "by": true, "for": true, "from": true, "in": true, "into": true,
	"of": true, "on": true, "per": true, "to": true, "via": true, "vs": true, "with": true,
}

// titleCaseProblem returns the first word of label that breaks Title Case, or "" when every
// word starts with a capital letter or a digit. Minor words may be lower case after the first
// word; acronyms ("URL", "ID") pass because only the first letter of a word is looked at.
func titleCaseProblem(label string) string {
	for i, word := range strings.Fields(label) {
		core := strings.TrimLeftFunc(word, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if core == "" {
			continue
		}
		if i > 0 && minorWords[core] {
			continue
		}
		first, _ := utf8.DecodeRuneInString(core)
		if unicode.IsLower(first) {
			return word
		}
	}
	return ""
}

// endsAlphanumeric reports whether s ends with a letter or a digit.
func endsAlphanumeric(s string) bool {
	last, _ := utf8.DecodeLastRuneInString(s)
	return unicode.IsLetter(last) || unicode.IsDigit(last)
}

// words splits s into its runs of letters and digits.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// sameWording reports whether a description merely repeats the summary, ignoring case and a
// final period.
func sameWording(summary, description string) bool {
	trim := func(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), ".") }
	return strings.EqualFold(trim(summary), trim(description))
}
