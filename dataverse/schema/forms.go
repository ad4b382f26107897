package schema

import "github.com/cspconnector/csp-connector/dataverse"

// forms are the main forms of the connector's tables.
func forms(s dataverse.Schema) []dataverse.Form { return nil }

// views are the public views of the connector's tables.
func views(s dataverse.Schema) []dataverse.View { return nil }
