package schema_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func TestSchemaIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, schema.Schema().Validate())
}

// TestTypedRowsMatchSchema keeps the typed rows and the one declaration of the schema together: every
// tagged field names a declared column of a compatible type, and every lookup binds to its target's
// entity set.
func TestTypedRowsMatchSchema(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	rows := map[string]any{
		schema.TableProvider: schema.Provider{}, schema.TableProviderAccount: schema.ProviderAccount{},
		schema.TableAgreementTemplate: schema.AgreementTemplate{}, schema.TableAgreement: schema.Agreement{},
		schema.TableSubscription: schema.Subscription{}, schema.TableLicenseChangeLog: schema.LicenseChangeLog{},
		schema.TableJob: schema.Job{}, schema.TableJobRun: schema.JobRun{}, schema.TableWebhookSubscription: schema.WebhookSubscription{},
		schema.TableNotification: schema.Notification{},
		schema.TableAccount:      schema.Account{}, schema.TableContact: schema.Contact{},
	}
	for _, table := range s.Tables {
		if !table.Standard {
			assert.Contains(t, rows, table.LogicalName, "every custom table has a typed row")
		}
	}
	for tableName, v := range rows {
		table, ok := s.Table(tableName)
		require.True(t, ok, tableName)
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, ok := f.Tag.Lookup("dataverse")
			if !ok {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == dataverse.AnnotationETag {
				continue
			}
			col, ok := table.Column(name)
			if !assert.True(t, ok, "%s.%s: column %s is not declared", typ.Name(), f.Name, name) {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			want := map[dataverse.ColumnType][]reflect.Kind{
				dataverse.TypeString: {reflect.String}, dataverse.TypeMemo: {reflect.String},
				dataverse.TypeInteger: {reflect.Int, reflect.Int64, reflect.Int32},
				dataverse.TypeChoice:  {reflect.Int}, dataverse.TypeState: {reflect.Int}, dataverse.TypeStatus: {reflect.Int},
				dataverse.TypeBoolean: {reflect.Bool}, dataverse.TypeDecimal: {reflect.Float64}, dataverse.TypeMoney: {reflect.Float64},
			}[col.Type]
			switch {
			case col.Type == dataverse.TypeDateTime:
				assert.Equal(t, reflect.TypeFor[time.Time](), ft, "%s.%s", typ.Name(), f.Name)
			case col.Type == dataverse.TypeID:
				assert.Equal(t, reflect.TypeFor[dataverse.GUID](), ft, "%s.%s", typ.Name(), f.Name)
			case col.Type == dataverse.TypeLookup:
				require.Equal(t, reflect.TypeFor[dataverse.Ref](), ft, "%s.%s", typ.Name(), f.Name)
				target, ok := s.Table(col.Target)
				require.True(t, ok)
				if !strings.Contains(opts, "readonly") {
					assert.Contains(t, opts, "lookup="+target.EntitySetName, "%s.%s binds to %s", typ.Name(), f.Name, target.EntitySetName)
				}
			default:
				assert.Contains(t, want, ft.Kind(), "%s.%s: %s column in a %s field", typ.Name(), f.Name, col.Type, ft)
			}
			if col.Type == dataverse.TypeChoice {
				assert.NotEqual(t, reflect.TypeFor[int](), ft, "%s.%s: a choice gets its own named type", typ.Name(), f.Name)
			}
		}
	}
}

func TestChoiceConstantsAreDeclaredOptions(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	lcl, _ := s.Table(schema.TableLicenseChangeLog)
	col, _ := lcl.Column("csp_provisioningstatus")
	labels := map[int]string{}
	for _, o := range col.Options {
		labels[o.Value] = o.Label
	}
	assert.Equal(t, "Awaiting Provisioning", labels[int(schema.ProvisioningAwaiting)])
	assert.Equal(t, "Failed Provisioning", labels[int(schema.ProvisioningFailed)])
	assert.Equal(t, "Not Applicable", labels[int(schema.ProvisioningNotApplicable)])
	agreement, _ := s.Table(schema.TableAgreement)
	assert.Contains(t, agreement.AllStatusReasons(), dataverse.Option{Value: schema.AgreementPending, Label: "Pending", State: schema.StateActive})
}

// TestFit: text is fitted to its column's declared length as Dataverse counts it (UTF-16 code units), cut
// on a whole character and marked with "…".
func TestFit(t *testing.T) {
	t.Parallel()
	name := schema.MaxLength(schema.TableAgreement, "csp_signatorylastname")
	require.Equal(t, 100, name)
	tests := []struct {
		name, in, want string
	}{
		{"ASCII that fits", strings.Repeat("a", 100), strings.Repeat("a", 100)},
		{"ASCII one too long", strings.Repeat("a", 101), strings.Repeat("a", 99) + "…"},
		{"multibyte counts one each", strings.Repeat("é", 100), strings.Repeat("é", 100)},
		{"multibyte too long", strings.Repeat("é", 150), strings.Repeat("é", 99) + "…"},
		{"emoji count two each", strings.Repeat("😀", 50), strings.Repeat("😀", 50)},
		{"emoji too long are never split", strings.Repeat("😀", 51), strings.Repeat("😀", 49) + "…"},
		{"emoji at the edge", strings.Repeat("a", 98) + "😀b", strings.Repeat("a", 98) + "…"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := schema.Fit(schema.TableAgreement, "csp_signatorylastname", tt.in)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, dataverse.TextLength(got), 100)
		})
	}
	assert.Equal(t, 500, schema.MaxLength(schema.TableAppNotification, "body"), "appnotification.body holds 500 characters")
	assert.Panics(t, func() { schema.Fit(schema.TableAgreement, "csp_nosuchcolumn", "x") })

	row := dataverse.Row{"csp_attestationmessage": strings.Repeat("x", 5000), "csp_attestationstatus": 1, "csp_signatorycountry": "GBR"}
	schema.FitRow(schema.TableAgreement, row)
	assert.Equal(t, 4000, dataverse.TextLength(row["csp_attestationmessage"].(string)))
	assert.Equal(t, "G…", row["csp_signatorycountry"])
	assert.Equal(t, 1, row["csp_attestationstatus"])
}

func TestTextLengthCountsUTF16(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 3, dataverse.TextLength("abc"))
	assert.Equal(t, 2, dataverse.TextLength("éü"))
	assert.Equal(t, 2, dataverse.TextLength("😀"))
	assert.Equal(t, "abc", dataverse.FitText("abc", 0), "no limit")
	assert.Equal(t, "…", dataverse.FitText("abc", 1))
}
