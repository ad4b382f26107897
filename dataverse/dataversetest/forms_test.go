package dataversetest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	goodFormXML = `<form><tabs><tab name="general" id="{11111111-1111-1111-1111-111111111111}"><columns><column width="100%"><sections>` +
		`<section name="s" id="{22222222-2222-2222-2222-222222222222}"><rows><row><cell id="{33333333-3333-3333-3333-333333333333}">` +
		`<control id="csp_quantity" classid="{C6D124CA-7EDA-4a60-AEA9-7FB8D318B68F}" datafieldname="csp_quantity" disabled="false" /></cell></row>` +
		`<row><cell id="{44444444-4444-4444-4444-444444444444}"><control id="lcls" classid="{E7A81278-8635-4D9E-8D4D-59480B391C5B}" indicationOfSubgrid="true">` +
		`<parameters><TargetEntityType>csp_licensechangelog</TargetEntityType></parameters></control></cell></row>` +
		`</rows></section></sections></column></columns></tab></tabs></form>`
	goodFetchXML = `<fetch version="1.0" mapping="logical"><entity name="csp_licensechangelog"><attribute name="csp_name" />` +
		`<order attribute="createdon" descending="false" /><filter type="and"><condition attribute="csp_provisioningstatus" operator="eq" value="418700000" /></filter>` +
		`<link-entity name="csp_subscription" from="csp_subscriptionid" to="csp_subscription"><attribute name="csp_offerid" /></link-entity></entity></fetch>`
	goodLayoutXML = `<grid name="resultset" object="10005" jump="csp_name" select="1" icon="1" preview="1"><row name="result" id="csp_licensechangelogid">` +
		`<cell name="csp_name" width="200" /><cell name="createdon" width="125" /></row></grid>`
)

func TestSystemFormsAndSavedQueriesAreKeptAndServedBack(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	formID := uuid.NewString()
	assert.Equal(t, formID, c.create("systemforms", map[string]any{
		"formid": formID, "name": "Subscription", "description": "d", "objecttypecode": "csp_subscription",
		"type": 2, "formxml": goodFormXML, "isdefault": true,
	}), "the id given is the id kept")
	viewID := c.create("savedqueries", map[string]any{
		"name": "Awaiting", "returnedtypecode": "csp_licensechangelog", "fetchxml": goodFetchXML, "layoutxml": goodLayoutXML,
		"querytype": 0, "isdefault": false,
	})

	forms := values(t, c.get("systemforms"+query("$select", "formid,name,objecttypecode,type,formxml", "$filter", "type eq 2 and objecttypecode eq 'csp_subscription'")))
	require.Len(t, forms, 1)
	assert.Equal(t, formID, forms[0]["formid"])
	assert.Equal(t, goodFormXML, forms[0]["formxml"])
	assert.NotContains(t, forms[0], "description", "$select is honoured")

	views := values(t, c.get("savedqueries"+query("$select", "savedqueryid,name,fetchxml,layoutxml,querytype,isdefault", "$filter", "querytype eq 0 and returnedtypecode eq 'csp_licensechangelog'")))
	require.Len(t, views, 1)
	assert.Equal(t, viewID, views[0]["savedqueryid"])
	assert.Equal(t, goodLayoutXML, views[0]["layoutxml"])

	res := c.do(http.MethodPatch, "savedqueries("+viewID+")", map[string]any{"name": "Awaiting, oldest first"}, "If-Match", "*")
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	assert.Equal(t, "Awaiting, oldest first", c.get("savedqueries(" + viewID + ")")["name"])
}

func TestSystemFormsAndSavedQueriesNamingUnknownTablesOrColumnsAreRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	form := func(objectType, formXML string) map[string]any {
		return map[string]any{"name": "F", "objecttypecode": objectType, "type": 2, "formxml": formXML}
	}
	view := func(table, fetch, layout string) map[string]any {
		return map[string]any{"name": "V", "returnedtypecode": table, "querytype": 0, "fetchxml": fetch, "layoutxml": layout}
	}
	for _, tc := range []struct {
		name, set   string
		body        map[string]any
		code, shows string
	}{
		{"form control bound to no column", "systemforms", form("csp_subscription", replace(goodFormXML, `datafieldname="csp_quantity"`, `datafieldname="csp_seats"`)),
			"0x80041103", "'csp_subscription' entity doesn't contain attribute with Name = 'csp_seats'"},
		{"form of no table", "systemforms", form("csp_nosuch", goodFormXML),
			"0x80041102", "The entity with a name = 'csp_nosuch'"},
		{"subgrid of no table", "systemforms", form("csp_subscription", replace(goodFormXML, "<TargetEntityType>csp_licensechangelog<", "<TargetEntityType>csp_lcl<")),
			"0x80041102", "The entity with a name = 'csp_lcl'"},
		{"formxml that is not XML", "systemforms", form("csp_subscription", "<form><tabs>"),
			"0x80040216", "The formxml is not valid XML"},
		{"fetch attribute of no column", "savedqueries", view("csp_licensechangelog", replace(goodFetchXML, `<attribute name="csp_name" />`, `<attribute name="csp_nom" />`), goodLayoutXML),
			"0x80041103", "'csp_licensechangelog' entity doesn't contain attribute with Name = 'csp_nom'"},
		{"fetch condition on no column", "savedqueries", view("csp_licensechangelog", replace(goodFetchXML, `condition attribute="csp_provisioningstatus"`, `condition attribute="csp_state"`), goodLayoutXML),
			"0x80041103", "Name = 'csp_state'"},
		{"fetch order by no column", "savedqueries", view("csp_licensechangelog", replace(goodFetchXML, `order attribute="createdon"`, `order attribute="created"`), goodLayoutXML),
			"0x80041103", "Name = 'created'"},
		{"link-entity attribute of no column of the linked table", "savedqueries", view("csp_licensechangelog", replace(goodFetchXML, `<attribute name="csp_offerid" />`, `<attribute name="csp_changetype" />`), goodLayoutXML),
			"0x80041103", "'csp_subscription' entity doesn't contain attribute with Name = 'csp_changetype'"},
		{"fetch of another table than the view's", "savedqueries", view("csp_subscription", goodFetchXML, ""),
			"0x80040203", "The fetchxml queries csp_licensechangelog, the view returns csp_subscription."},
		{"fetch of no table", "savedqueries", view("csp_licensechangelog", replace(goodFetchXML, `entity name="csp_licensechangelog"`, `entity name="csp_lcl"`), goodLayoutXML),
			"0x80041102", "The entity with a name = 'csp_lcl'"},
		{"layout cell of no column", "savedqueries", view("csp_licensechangelog", goodFetchXML, replace(goodLayoutXML, `cell name="createdon"`, `cell name="csp_created"`)),
			"0x80041103", "Name = 'csp_created'"},
		{"view of no table", "savedqueries", view("csp_nosuch", goodFetchXML, goodLayoutXML),
			"0x80041102", "The entity with a name = 'csp_nosuch'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.do(http.MethodPost, tc.set, tc.body)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			code, msg := res.apiError(t)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, msg, tc.shows)
		})
	}
	assert.Empty(t, srv.Rows("systemform"), "nothing refused was kept")

	// An update that would break a form is refused, and the form stays as it was.
	id := c.create("systemforms", form("csp_subscription", goodFormXML))
	res := c.do(http.MethodPatch, "systemforms("+id+")", map[string]any{"formxml": replace(goodFormXML, `datafieldname="csp_quantity"`, `datafieldname="csp_seats"`)}, "If-Match", "*")
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	assert.Equal(t, goodFormXML, c.get("systemforms(" + id + ")")["formxml"])
}

// replace replaces the first old in s, which must be there.
func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("replace: " + old + " is not in the text")
	}
	return strings.Replace(s, old, new, 1)
}
