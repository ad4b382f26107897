package dataversetest

import (
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The command buttons of model-driven apps: web resources (webresourceset: the scripts the buttons run)
// and modern commands (appactions), with the columns the installer writes. A web resource's name and an
// app action's unique name are unique, as in Dataverse; an app action on a table that does not exist, or a
// JavaScript action without its function or script, is refused.
//
// The simulator also serves what a browser needs to run those scripts against it: every web resource at
// /WebResources/<name>, as Dynamics serves them, and, at /sandbox/xrm.js, a minimal Xrm host (the parts of
// the client API the scripts call, over this Web API). The pages (pages.go, /main.aspx) show the buttons
// on the app's forms and views and run them through it.

// commandTables are webresource and appaction.
func commandTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	choice := func(name string, opts ...dataverse.Option) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeChoice, Options: opts}
	}
	o := func(v int, label string) dataverse.Option { return dataverse.Option{Value: v, Label: label} }
	return []dataverse.Table{
		{LogicalName: "webresource", EntitySetName: "webresourceset", DisplayName: "Web Resource", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256),
			Columns: []dataverse.Column{
				str("displayname", 200),
				{LogicalName: "description", DisplayName: "description", Type: dataverse.TypeMemo, MaxLength: 2000},
				{LogicalName: "content", DisplayName: "content", Type: dataverse.TypeMemo, MaxLength: 1 << 30},
				choice("webresourcetype", o(1, "Webpage (HTML)"), o(2, "Style Sheet (CSS)"), o(3, "Script (JScript)"), o(4, "Data (XML)"),
					o(5, "PNG format"), o(6, "JPG format"), o(7, "GIF format"), o(8, "Silverlight (XAP)"), o(9, "Style Sheet (XSL)"),
					o(10, "ICO format"), o(11, "Vector format (SVG)"), o(12, "String (RESX)")),
			},
			Keys: []dataverse.AlternateKey{{SchemaName: "webresource_name", Columns: []string{"name"}}}},
		{LogicalName: "appaction", EntitySetName: "appactions", DisplayName: "App Action", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 100),
			Columns: []dataverse.Column{
				str("uniquename", 300), str("buttonlabeltext", 100), str("buttontooltiptitle", 100), str("buttontooltipdescription", 500),
				str("buttonaccessibilitytext", 100), str("contextvalue", 150), str("fonticon", 100),
				str("onclickeventjavascriptfunctionname", 300), str("onclickeventjavascriptparameters", 4000),
				choice("context", o(0, "All"), o(1, "Entity")),
				choice("location", o(0, "Form"), o(1, "Main Grid"), o(2, "Sub Grid"), o(3, "Associated Grid"), o(4, "Quick Form"), o(5, "Global Header"), o(6, "Dashboard")),
				choice("type", o(0, "Standard Button"), o(1, "Dropdown Button"), o(2, "Split Button")),
				choice("onclickeventtype", o(0, "None"), o(1, "Formula"), o(2, "JavaScript")),
				{LogicalName: "sequence", DisplayName: "sequence", Type: dataverse.TypeDecimal, Precision: 10},
				{LogicalName: "hidden", DisplayName: "hidden", Type: dataverse.TypeBoolean},
				{LogicalName: "onclickeventjavascriptwebresourceid", DisplayName: "On Click Event JavaScript WebResource Id", Type: dataverse.TypeLookup, Target: "webresource"},
				// The app the button belongs to (navigation property AppModuleId); an unknown app is refused.
				{LogicalName: "appmoduleid", DisplayName: "AppModuleId", Type: dataverse.TypeLookup, Target: "appmodule"},
			},
			Keys: []dataverse.AlternateKey{{SchemaName: "appaction_uniquename", Columns: []string{"uniquename"}}}},
	}
}

// checkAppAction refuses an app action Dataverse would refuse: one for a table that does not exist, a
// JavaScript action without its function or script.
func (s *Server) checkAppAction(t *table, r *record) *apiError {
	if t.def.LogicalName != "appaction" {
		return nil
	}
	if ctx, _ := r.values["context"].(int64); ctx == 1 {
		name, _ := r.values["contextvalue"].(string)
		if s.tables[name] == nil {
			return &apiError{status: 400, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("Could not find entity with name '%s'.", name)}
		}
	}
	if kind, _ := r.values["onclickeventtype"].(int64); kind == 2 {
		fn, _ := r.values["onclickeventjavascriptfunctionname"].(string)
		if strings.TrimSpace(fn) == "" || r.values["onclickeventjavascriptwebresourceid"] == nil {
			return &apiError{status: 400, code: "0x80040203", message: "A JavaScript command needs onclickeventjavascriptfunctionname and onclickeventjavascriptwebresourceid."}
		}
	}
	return nil
}

//go:embed sandboxpage
var sandboxPage embed.FS

// serveApp serves web resources at /WebResources/<name> and the sandbox's Xrm host under /sandbox/. It
// reports whether the request was one of those.
func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case strings.HasPrefix(r.URL.Path, "/WebResources/"):
		s.serveWebResource(w, strings.TrimPrefix(r.URL.Path, "/WebResources/"))
		return true
	case strings.HasPrefix(r.URL.Path, "/sandbox/"):
		name := path.Clean(strings.TrimPrefix(r.URL.Path, "/sandbox/"))
		content, err := sandboxPage.ReadFile("sandboxpage/" + name)
		if err != nil || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return true
		}
		w.Header().Set("Content-Type", contentType(name))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(content)
		return true
	}
	return false
}

func (s *Server) serveWebResource(w http.ResponseWriter, name string) {
	s.mu.Lock()
	var content []byte
	var kind int64
	found := false
	if t := s.tables["webresource"]; t != nil {
		for _, id := range t.order {
			rec := t.rows[id]
			if rec == nil || !strings.EqualFold(fmt.Sprint(rec.values["name"]), name) {
				continue
			}
			found = true
			kind, _ = rec.values["webresourcetype"].(int64)
			b64, _ := rec.values["content"].(string)
			content, _ = base64.StdEncoding.DecodeString(b64)
			break
		}
	}
	s.mu.Unlock()
	if !found {
		http.Error(w, "The web resource "+name+" does not exist.", http.StatusNotFound)
		return
	}
	types := map[int64]string{1: "text/html; charset=utf-8", 2: "text/css; charset=utf-8", 3: "text/javascript; charset=utf-8", 4: "text/xml; charset=utf-8",
		5: "image/png", 6: "image/jpeg", 7: "image/gif", 10: "image/x-icon", 11: "image/svg+xml"}
	w.Header().Set("Content-Type", types[kind])
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(content)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	}
	return "application/octet-stream"
}
