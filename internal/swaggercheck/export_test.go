package swaggercheck

// CheckRules is Check without the OpenAPI 2.0 validation, for the tests of the hand-written
// rules: go-openapi takes about half a second per document (two under -race).
func CheckRules(doc []byte) []string {
	return check(doc, false)
}
