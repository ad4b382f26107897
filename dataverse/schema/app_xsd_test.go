package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/xsdcheck"
)

// The app's XML is what Dynamics reads: every form, view and the sitemap is valid against Microsoft's
// published schemas (FormXml.xsd, Fetch.xsd, SiteMap.xsd).
func TestAppXMLIsValidAgainstMicrosoftsSchemas(t *testing.T) {
	s := schema.Schema()
	app := s.App
	require.NotEmpty(t, app.Forms)
	require.NotEmpty(t, app.Views)
	for _, f := range app.Forms {
		xml, err := f.FormXML(s, dataverse.ViewID)
		require.NoError(t, err, f.Name)
		t.Run("form "+f.Table, func(t *testing.T) { xsdcheck.Validate(t, xsdcheck.FormXml, xml) })
	}
	for _, v := range app.Views {
		fetch, err := v.FetchXML(s)
		require.NoError(t, err, v.Name)
		// The object type code is the environment's; any number shows the shape.
		layout, err := v.LayoutXML(s, 10001)
		require.NoError(t, err, v.Name)
		t.Run("view "+v.Table+" "+v.Name, func(t *testing.T) {
			xsdcheck.Validate(t, xsdcheck.FetchXml, fetch)
			xsdcheck.Validate(t, xsdcheck.LayoutXml, layout)
		})
	}
	t.Run("sitemap", func(t *testing.T) { xsdcheck.Validate(t, xsdcheck.SiteMap, app.SiteMap.XML()) })
}
