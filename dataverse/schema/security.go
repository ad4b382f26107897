package schema

import "github.com/cspconnector/csp-connector/dataverse"

// roles are the connector's security roles.
func roles(s dataverse.Schema) []dataverse.Role { return nil }

// fieldSecurityProfiles say who reads the secured columns.
func fieldSecurityProfiles(s dataverse.Schema) []dataverse.FieldSecurityProfile { return nil }
