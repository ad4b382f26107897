package schema

import "github.com/cspconnector/csp-connector/dataverse"

// webResources are the scripts the commands run.
func webResources(s dataverse.Schema) []dataverse.WebResource { return nil }

// commands are the app's buttons.
func commands(s dataverse.Schema) []dataverse.Command { return nil }
