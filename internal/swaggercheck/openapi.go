package swaggercheck

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-openapi/loads"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/swag/loading"
	"github.com/go-openapi/validate"
)

// errExternalRef is what the OpenAPI validation gets when the document points outside itself.
// The connector definition is uploaded as one file, so it must be self-contained, and refusing
// the load keeps the gate offline.
var errExternalRef = errors.New("the definition must be self-contained: Power Platform imports a single file, so $ref may only point inside it")

// refuseExternal is the document loader for $ref that leave the document.
func refuseExternal(path string, _ ...loading.Option) (json.RawMessage, error) {
	return nil, fmt.Errorf("load %q: %w", path, errExternalRef)
}

// openAPIProblems validates doc against the Swagger 2.0 specification (the JSON meta-schema and
// the semantic rules of go-openapi/validate: path parameters match the template, references
// resolve, defaults and examples fit their schema, ...). Vendor extensions pass, as the
// specification allows x-* keys everywhere; which x-ms-* keys Power Platform accepts is
// checkExtensions' business.
func openAPIProblems(doc []byte, root map[string]any) (problems []string) {
	loaded, err := loads.Analyzed(doc, "2.0", loads.WithDocLoader(refuseExternal))
	if err != nil {
		return []string{fmt.Sprintf("document: is not a valid OpenAPI 2.0 document: %v", err)}
	}
	defer func() {
		// validate panics on some malformed documents; that is one more problem, not a crash
		// of the test that runs the gate.
		if r := recover(); r != nil {
			problems = append(problems, fmt.Sprintf("document: OpenAPI 2.0 validation gave up: %v", r))
		}
	}()
	validator := validate.NewSpecValidator(loaded.Schema(), strfmt.NewFormats(), validate.WithPathLoader(refuseExternal))
	validator.Options.ContinueOnErrors = true
	result, _ := validator.Validate(loaded)
	for _, located := range result.LocatedErrors() {
		problems = append(problems, fmt.Sprintf("%s: OpenAPI 2.0: %v", pointerLocation(root, located.Pointer), located.Err))
	}
	return problems
}
