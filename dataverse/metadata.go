package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// TableDefinition is what Dataverse reports about an existing table: enough to compare with a declaration.
type TableDefinition struct {
	LogicalName          string
	EntitySetName        string
	PrimaryIDAttribute   string
	PrimaryNameAttribute string
	// ObjectTypeCode is the table's number in this environment (views' LayoutXml names it).
	ObjectTypeCode int
	Columns        map[string]ColumnDefinition
	Keys           []KeyDefinition
	// StatusReasons are the statuscode options.
	StatusReasons []Option
}

// ColumnDefinition is an existing column.
type ColumnDefinition struct {
	LogicalName string
	Type        ColumnType
	// Options are a choice column's values.
	Options []Option
}

// KeyDefinition is an existing alternate key; Status is its index state (Pending, InProgress, Active, Failed).
type KeyDefinition struct {
	SchemaName string
	Columns    []string
	Status     string
}

type metaLabel struct {
	UserLocalizedLabel *struct {
		Label string `json:"Label"`
	} `json:"UserLocalizedLabel"`
	LocalizedLabels []struct {
		Label string `json:"Label"`
	} `json:"LocalizedLabels"`
}

func (l metaLabel) text() string {
	if l.UserLocalizedLabel != nil {
		return l.UserLocalizedLabel.Label
	}
	if len(l.LocalizedLabels) > 0 {
		return l.LocalizedLabels[0].Label
	}
	return ""
}

type metaOptions struct {
	Value []struct {
		LogicalName string `json:"LogicalName"`
		OptionSet   *struct {
			Options []struct {
				Value int       `json:"Value"`
				State *int      `json:"State"`
				Label metaLabel `json:"Label"`
			} `json:"Options"`
		} `json:"OptionSet"`
	} `json:"value"`
}

func entityDefinitionPath(logicalName string) (string, error) {
	if err := checkColumn(logicalName); err != nil {
		return "", err
	}
	return "EntityDefinitions(LogicalName='" + logicalName + "')", nil
}

// GetTableDefinition reads an existing table's columns, keys, choice options and status reasons. A table
// that does not exist is an error for which IsNotFound is true.
//
// API: GET /EntityDefinitions(LogicalName='…')?$expand=Attributes,Keys, then the Picklist and Status
// attribute casts with $expand=OptionSet.
func (c *Client) GetTableDefinition(ctx context.Context, logicalName string) (*TableDefinition, error) {
	path, err := entityDefinitionPath(logicalName)
	if err != nil {
		return nil, err
	}
	var raw struct {
		LogicalName          string `json:"LogicalName"`
		EntitySetName        string `json:"EntitySetName"`
		PrimaryIDAttribute   string `json:"PrimaryIdAttribute"`
		PrimaryNameAttribute string `json:"PrimaryNameAttribute"`
		ObjectTypeCode       int    `json:"ObjectTypeCode"`
		Attributes           []struct {
			LogicalName   string `json:"LogicalName"`
			AttributeType string `json:"AttributeType"`
		} `json:"Attributes"`
		Keys []struct {
			SchemaName           string   `json:"SchemaName"`
			KeyAttributes        []string `json:"KeyAttributes"`
			EntityKeyIndexStatus string   `json:"EntityKeyIndexStatus"`
		} `json:"Keys"`
	}
	q := url.Values{
		"$select": {"LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ObjectTypeCode"},
		"$expand": {"Attributes($select=LogicalName,AttributeType),Keys($select=SchemaName,KeyAttributes,EntityKeyIndexStatus)"},
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: path, query: q, idempotent: true}, &raw); err != nil {
		return nil, fmt.Errorf("dataverse: get table definition %s: %w", logicalName, err)
	}
	def := &TableDefinition{
		LogicalName: raw.LogicalName, EntitySetName: raw.EntitySetName,
		PrimaryIDAttribute: raw.PrimaryIDAttribute, PrimaryNameAttribute: raw.PrimaryNameAttribute,
		ObjectTypeCode: raw.ObjectTypeCode,
		Columns:        make(map[string]ColumnDefinition, len(raw.Attributes)),
	}
	for _, a := range raw.Attributes {
		def.Columns[a.LogicalName] = ColumnDefinition{LogicalName: a.LogicalName, Type: ColumnType(a.AttributeType)}
	}
	for _, k := range raw.Keys {
		def.Keys = append(def.Keys, KeyDefinition{SchemaName: k.SchemaName, Columns: k.KeyAttributes, Status: k.EntityKeyIndexStatus})
	}
	for _, cast := range []string{"PicklistAttributeMetadata", "StatusAttributeMetadata"} {
		var opts metaOptions
		q := url.Values{"$select": {"LogicalName"}, "$expand": {"OptionSet($select=Options)"}}
		req := request{method: http.MethodGet, path: path + "/Attributes/Microsoft.Dynamics.CRM." + cast, query: q, idempotent: true}
		if _, err := c.doJSON(ctx, req, &opts); err != nil {
			return nil, fmt.Errorf("dataverse: get %s options of %s: %w", cast, logicalName, err)
		}
		for _, a := range opts.Value {
			if a.OptionSet == nil {
				continue
			}
			var list []Option
			for _, o := range a.OptionSet.Options {
				opt := Option{Value: o.Value, Label: o.Label.text()}
				if o.State != nil {
					opt.State = *o.State
				}
				list = append(list, opt)
			}
			if cast == "StatusAttributeMetadata" {
				def.StatusReasons = list
				continue
			}
			col := def.Columns[a.LogicalName]
			col.Options = list
			def.Columns[a.LogicalName] = col
		}
	}
	return def, nil
}

// label is a metadata Label in US English.
func label(text string) map[string]any {
	return map[string]any{
		"@odata.type": "Microsoft.Dynamics.CRM.Label",
		"LocalizedLabels": []any{map[string]any{
			"@odata.type":  "Microsoft.Dynamics.CRM.LocalizedLabel",
			"Label":        text,
			"LanguageCode": 1033,
		}},
	}
}

func requiredLevel(required bool) map[string]any {
	level := "None"
	if required {
		level = "ApplicationRequired"
	}
	return map[string]any{"Value": level, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}
}

// attributeMetadata is the definition body of a (non-lookup) column.
func attributeMetadata(col Column) (map[string]any, error) {
	m := map[string]any{
		"SchemaName":    col.LogicalName,
		"DisplayName":   label(col.DisplayName),
		"Description":   label(col.Description),
		"RequiredLevel": requiredLevel(col.Required),
	}
	if col.Secured {
		m["IsSecured"] = true
	}
	kind := func(odataType, attrType, typeName string) {
		m["@odata.type"] = "Microsoft.Dynamics.CRM." + odataType
		m["AttributeType"] = attrType
		m["AttributeTypeName"] = map[string]any{"Value": typeName}
	}
	switch col.Type {
	case TypeString:
		kind("StringAttributeMetadata", "String", "StringType")
		format := col.Format
		if format == "" {
			format = "Text"
		}
		m["MaxLength"] = col.MaxLength
		m["FormatName"] = map[string]any{"Value": format}
	case TypeMemo:
		kind("MemoAttributeMetadata", "Memo", "MemoType")
		m["MaxLength"] = col.MaxLength
		m["Format"] = "TextArea"
	case TypeInteger:
		kind("IntegerAttributeMetadata", "Integer", "IntegerType")
		m["Format"] = "None"
		lo, hi := col.MinValue, col.MaxValue
		if lo == 0 && hi == 0 {
			lo, hi = -2147483648, 2147483647
		}
		m["MinValue"], m["MaxValue"] = lo, hi
	case TypeDecimal:
		kind("DecimalAttributeMetadata", "Decimal", "DecimalType")
		m["Precision"] = col.Precision
		lo, hi := col.MinValue, col.MaxValue
		if lo == 0 && hi == 0 {
			lo, hi = -100000000000, 100000000000
		}
		m["MinValue"], m["MaxValue"] = lo, hi
	case TypeMoney:
		kind("MoneyAttributeMetadata", "Money", "MoneyType")
		m["PrecisionSource"] = 2
	case TypeBoolean:
		kind("BooleanAttributeMetadata", "Boolean", "BooleanType")
		m["DefaultValue"] = false
		m["OptionSet"] = map[string]any{
			"TrueOption":    map[string]any{"Value": 1, "Label": label("Yes")},
			"FalseOption":   map[string]any{"Value": 0, "Label": label("No")},
			"OptionSetType": "Boolean",
		}
	case TypeDateTime:
		kind("DateTimeAttributeMetadata", "DateTime", "DateTimeType")
		format, behavior := "DateAndTime", "UserLocal"
		if col.DateOnly {
			format, behavior = "DateOnly", "DateOnly"
		}
		m["Format"] = format
		m["DateTimeBehavior"] = map[string]any{"Value": behavior}
	case TypeChoice:
		kind("PicklistAttributeMetadata", "Picklist", "PicklistType")
		opts := make([]any, len(col.Options))
		for i, o := range col.Options {
			opts[i] = map[string]any{"Value": o.Value, "Label": label(o.Label)}
		}
		m["OptionSet"] = map[string]any{
			"@odata.type":   "Microsoft.Dynamics.CRM.OptionSetMetadata",
			"IsGlobal":      false,
			"OptionSetType": "Picklist",
			"Options":       opts,
		}
	default:
		return nil, fmt.Errorf("dataverse: column %s: type %s cannot be created as an attribute", col.LogicalName, col.Type)
	}
	return m, nil
}

func (c *Client) postMetadata(ctx context.Context, path string, body any, solution string) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h := http.Header{}
	if solution != "" {
		h.Set("MSCRM.SolutionUniqueName", solution)
	}
	_, err = c.doJSON(ctx, request{method: http.MethodPost, path: path, header: h, body: data}, nil)
	return err
}

// CreateTable creates a custom table with its primary name column, in solution (may be empty).
//
// API: POST /EntityDefinitions
func (c *Client) CreateTable(ctx context.Context, t Table, solution string) error {
	primary, err := attributeMetadata(t.PrimaryName)
	if err != nil {
		return err
	}
	primary["IsPrimaryName"] = true
	ownership := "UserOwned"
	if t.OrganizationOwned {
		ownership = "OrganizationOwned"
	}
	body := map[string]any{
		"@odata.type":           "Microsoft.Dynamics.CRM.EntityMetadata",
		"SchemaName":            t.LogicalName,
		"EntitySetName":         t.EntitySetName,
		"DisplayName":           label(t.DisplayName),
		"DisplayCollectionName": label(t.PluralName),
		"Description":           label(t.Description),
		"OwnershipType":         ownership,
		"IsActivity":            false,
		"HasActivities":         false,
		"HasNotes":              false,
		"Attributes":            []any{primary},
	}
	if err := c.postMetadata(ctx, "EntityDefinitions", body, solution); err != nil {
		return fmt.Errorf("dataverse: create table %s: %w", t.LogicalName, err)
	}
	return nil
}

// CreateColumn adds a (non-lookup) column to a table.
//
// API: POST /EntityDefinitions(LogicalName='…')/Attributes
func (c *Client) CreateColumn(ctx context.Context, table string, col Column, solution string) error {
	path, err := entityDefinitionPath(table)
	if err != nil {
		return err
	}
	body, err := attributeMetadata(col)
	if err != nil {
		return err
	}
	if err := c.postMetadata(ctx, path+"/Attributes", body, solution); err != nil {
		return fmt.Errorf("dataverse: create column %s.%s: %w", table, col.LogicalName, err)
	}
	return nil
}

// CreateLookup adds a lookup column as a one-to-many relationship from target to table. The navigation
// property is the column's logical name, so writes bind it as <column>@odata.bind.
//
// API: POST /RelationshipDefinitions (OneToManyRelationshipMetadata with a LookupAttributeMetadata)
func (c *Client) CreateLookup(ctx context.Context, table string, col Column, target Table, solution string) error {
	name := relationshipName(target.LogicalName, table, col.LogicalName)
	body := map[string]any{
		"@odata.type":         "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
		"SchemaName":          name,
		"ReferencedEntity":    target.LogicalName,
		"ReferencedAttribute": target.PrimaryKey(),
		"ReferencingEntity":   table,
		"ReferencingEntityNavigationPropertyName": col.LogicalName,
		"ReferencedEntityNavigationPropertyName":  name,
		"CascadeConfiguration": map[string]any{
			"Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade",
			"Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade",
		},
		"Lookup": map[string]any{
			"@odata.type":       "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
			"AttributeType":     "Lookup",
			"AttributeTypeName": map[string]any{"Value": "LookupType"},
			"SchemaName":        col.LogicalName,
			"DisplayName":       label(col.DisplayName),
			"Description":       label(col.Description),
			"RequiredLevel":     requiredLevel(col.Required),
		},
	}
	if err := c.postMetadata(ctx, "RelationshipDefinitions", body, solution); err != nil {
		return fmt.Errorf("dataverse: create lookup %s.%s: %w", table, col.LogicalName, err)
	}
	return nil
}

// RelationshipName is the name CreateLookup gives the one-to-many relationship of a lookup column, and so
// the collection-valued navigation property of its target table ($expand from the target to the rows that
// point at it): <target>_<table>_<column>, trimmed to Dataverse's 100 characters.
func RelationshipName(target, table, column string) string {
	name := target + "_" + table + "_" + strings.TrimPrefix(column, strings.SplitN(table, "_", 2)[0]+"_")
	if len(name) > 100 {
		name = name[:100]
	}
	return name
}

func relationshipName(target, table, column string) string {
	return RelationshipName(target, table, column)
}

// CreateKey adds an alternate key. Dataverse builds its index asynchronously (EntityKeyIndexStatus).
//
// API: POST /EntityDefinitions(LogicalName='…')/Keys
func (c *Client) CreateKey(ctx context.Context, table string, key AlternateKey, solution string) error {
	path, err := entityDefinitionPath(table)
	if err != nil {
		return err
	}
	body := map[string]any{
		"@odata.type":   "Microsoft.Dynamics.CRM.EntityKeyMetadata",
		"SchemaName":    key.SchemaName,
		"DisplayName":   label(key.SchemaName),
		"KeyAttributes": key.Columns,
	}
	if err := c.postMetadata(ctx, path+"/Keys", body, solution); err != nil {
		return fmt.Errorf("dataverse: create key %s.%s: %w", table, key.SchemaName, err)
	}
	return nil
}

// InsertOptionValue adds an option to an existing choice column.
//
// API: POST /InsertOptionValue
func (c *Client) InsertOptionValue(ctx context.Context, table, column string, opt Option, solution string) error {
	body := map[string]any{
		"EntityLogicalName": table, "AttributeLogicalName": column,
		"Value": opt.Value, "Label": label(opt.Label),
	}
	if solution != "" {
		body["SolutionUniqueName"] = solution
	}
	if err := c.postMetadata(ctx, "InsertOptionValue", body, ""); err != nil {
		return fmt.Errorf("dataverse: add option %d to %s.%s: %w", opt.Value, table, column, err)
	}
	return nil
}

// InsertStatusValue adds a status reason to a table's statuscode, in the given state.
//
// API: POST /InsertStatusValue
func (c *Client) InsertStatusValue(ctx context.Context, table string, opt Option, solution string) error {
	body := map[string]any{
		"EntityLogicalName": table, "AttributeLogicalName": "statuscode",
		"Value": opt.Value, "StateCode": opt.State, "Label": label(opt.Label),
	}
	if solution != "" {
		body["SolutionUniqueName"] = solution
	}
	if err := c.postMetadata(ctx, "InsertStatusValue", body, ""); err != nil {
		return fmt.Errorf("dataverse: add status reason %d to %s: %w", opt.Value, table, err)
	}
	return nil
}

// PublishTables publishes customizations of the given tables so apps show them.
//
// API: POST /PublishXml
func (c *Client) PublishTables(ctx context.Context, tables []string) error {
	var b strings.Builder
	b.WriteString("<importexportxml><entities>")
	for _, t := range tables {
		if err := checkColumn(t); err != nil {
			return err
		}
		b.WriteString("<entity>" + t + "</entity>")
	}
	b.WriteString("</entities></importexportxml>")
	if err := c.postMetadata(ctx, "PublishXml", map[string]any{"ParameterXml": b.String()}, ""); err != nil {
		return fmt.Errorf("dataverse: publish: %w", err)
	}
	return nil
}
