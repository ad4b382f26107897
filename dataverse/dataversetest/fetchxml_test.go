package dataversetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
)

// TestFetchXmlRunsAgainstTheStore: the conditions the app's views use select the rows Dataverse would,
// and what the pages cannot evaluate is named instead of silently changing the answer.
func TestFetchXmlRunsAgainstTheStore(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }, Tables: []dataverse.Table{{
		LogicalName: "csp_item", EntitySetName: "csp_items", DisplayName: "Item", PrimaryName: dataverse.Column{LogicalName: "csp_name", DisplayName: "Name", Type: dataverse.TypeString, MaxLength: 100},
		Columns: []dataverse.Column{
			{LogicalName: "csp_n", DisplayName: "N", Type: dataverse.TypeInteger},
			{LogicalName: "csp_status", DisplayName: "Status", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 1, Label: "A"}, {Value: 2, Label: "B"}, {Value: 3, Label: "C"}}},
			{LogicalName: "csp_due", DisplayName: "Due", Type: dataverse.TypeDateTime},
			{LogicalName: "csp_owner", DisplayName: "Owner", Type: dataverse.TypeLookup, Target: "systemuser"},
		},
	}}})
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, row := range []map[string]any{
		{"csp_name": "alpha", "csp_n": 1, "csp_status": 1, "csp_due": at(2 * time.Hour)},
		{"csp_name": "beta", "csp_n": 5, "csp_status": 2, "csp_due": at(6 * 24 * time.Hour), "csp_owner@odata.bind": "/systemusers(" + s.opts.UserID.String() + ")"},
		{"csp_name": "gamma", "csp_n": 9, "csp_status": 3, "csp_due": at(-40 * 24 * time.Hour)},
		{"csp_name": "delta", "csp_n": 5},
	} {
		_, err := s.Insert("csp_item", row)
		require.NoError(t, err)
	}
	run := func(body string) ([]string, []string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		q, err := s.compileFetch(`<fetch version="1.0" mapping="logical"><entity name="csp_item"><attribute name="csp_name" />` + body + `</entity></fetch>`)
		require.NoError(t, err)
		var names []string
		for _, r := range q.run(nil) {
			names = append(names, r.values["csp_name"].(string))
		}
		return names, q.unsupported
	}
	cond := func(c string) string { return `<filter type="and">` + c + `</filter><order attribute="csp_name" />` }
	for _, tc := range []struct {
		name, fetch string
		want        []string
	}{
		{"eq", cond(`<condition attribute="csp_status" operator="eq" value="2" />`), []string{"beta"}},
		{"ne leaves out empty values", cond(`<condition attribute="csp_status" operator="ne" value="2" />`), []string{"alpha", "gamma"}},
		{"in", cond(`<condition attribute="csp_status" operator="in"><value>1</value><value>3</value></condition>`), []string{"alpha", "gamma"}},
		{"not-in", cond(`<condition attribute="csp_status" operator="not-in"><value>1</value></condition>`), []string{"beta", "gamma"}},
		{"null", cond(`<condition attribute="csp_status" operator="null" />`), []string{"delta"}},
		{"not-null", cond(`<condition attribute="csp_due" operator="not-null" />`), []string{"alpha", "beta", "gamma"}},
		{"lt", cond(`<condition attribute="csp_n" operator="lt" value="5" />`), []string{"alpha"}},
		{"ge", cond(`<condition attribute="csp_n" operator="ge" value="5" />`), []string{"beta", "delta", "gamma"}},
		{"next-x-days", cond(`<condition attribute="csp_due" operator="next-x-days" value="7" />`), []string{"alpha", "beta"}},
		{"next-x-days leaves out later ones", cond(`<condition attribute="csp_due" operator="next-x-days" value="1" />`), []string{"alpha"}},
		{"olderthan-x-days", cond(`<condition attribute="csp_due" operator="olderthan-x-days" value="30" />`), []string{"gamma"}},
		{"like", cond(`<condition attribute="csp_name" operator="like" value="%ta" />`), []string{"beta", "delta"}},
		{"eq-userid", cond(`<condition attribute="csp_owner" operator="eq-userid" />`), []string{"beta"}},
		{"or of nested and", `<filter type="or"><condition attribute="csp_status" operator="eq" value="1" /><filter type="and"><condition attribute="csp_n" operator="eq" value="5" /><condition attribute="csp_status" operator="null" /></filter></filter><order attribute="csp_name" />`, []string{"alpha", "delta"}},
		{"orders descending, then by name", `<order attribute="csp_n" descending="true" /><order attribute="csp_name" />`, []string{"gamma", "beta", "delta", "alpha"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unsupported := run(tc.fetch)
			assert.Equal(t, tc.want, got)
			assert.Empty(t, unsupported)
		})
	}

	got, unsupported := run(cond(`<condition attribute="csp_n" operator="between"><value>1</value><value>5</value></condition>`) +
		`<link-entity name="systemuser" from="systemuserid" to="csp_owner" alias="o"><attribute name="fullname" /></link-entity>`)
	assert.Equal(t, []string{"alpha", "beta", "delta", "gamma"}, got, "what the sandbox does not evaluate filters nothing")
	assert.Equal(t, []string{
		"a link to systemuser (link-entity o): its conditions are not applied and its columns are empty",
		"the condition csp_n between (an operator the sandbox does not evaluate): rows are not filtered by it",
	}, unsupported)
}
