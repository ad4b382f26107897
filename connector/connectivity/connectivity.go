package connectivity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// VerifyJobName is the job's name (its csp_job row's csp_name).
const VerifyJobName = "Verify Connectivity"

// Check is one connectivity check's outcome.
type Check struct {
	Name    string        `json:"name" desc:"What was checked."`
	OK      bool          `json:"ok" desc:"Whether it passed."`
	Skipped bool          `json:"skipped,omitempty" desc:"True when it was not checked (not configured)."`
	Detail  string        `json:"detail" desc:"What it found, in words."`
	Took    time.Duration `json:"-"`
	TookMS  int64         `json:"tookMs" desc:"How long it took, in milliseconds."`
	// System is the error as the client returned it, for the provider's system message and the log; never
	// shown to people as the message.
	System string `json:"-"`
}

// Report is the outcome of Verify Connectivity.
type Report struct {
	At     time.Time `json:"at" desc:"When the checks ran."`
	OK     bool      `json:"ok" desc:"Whether every check passed."`
	Checks []Check   `json:"checks" desc:"Each check."`
}

// Message is the report in words, for the provider row and the console.
func (r Report) Message() string {
	var failed, passed []string
	for _, c := range r.Checks {
		switch {
		case c.Skipped:
		case c.OK:
			passed = append(passed, c.Name)
		case !slices.Contains(failed, c.Detail): // each detail names its service; two checks of one service may fail alike
			failed = append(failed, c.Detail)
		}
	}
	if len(failed) == 0 {
		return "Connected: " + strings.Join(passed, ", ") + " answered."
	}
	return "Not connected. " + strings.Join(failed, " ")
}

// Checker checks that the connector can reach and use Dataverse, Partner Center (with each kind of
// credential configured) and Service Bus, and records the outcome on the Partner Center provider rows.
// Make one with New.
type Checker struct {
	dv          *dataverse.Client
	pc          *partnercenter.Client
	serviceBus  *azservicebus.Client
	queue       string
	setHealth   func(component string, err error)
	onConnected func(ctx context.Context)
	timeout     time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu   sync.Mutex
	last Report
}

// Options are a Checker's optional collaborators and settings; the zero value is ready to use.
type Options struct {
	// ServiceBus is the client of the queue events come on; nil when events come by webhook (the check is
	// skipped).
	ServiceBus *azservicebus.Client
	// Queue is the Service Bus queue the check reads.
	Queue string
	// SetHealth records a component's readiness after each check (a nil error: ready); nil reports nothing.
	SetHealth func(component string, err error)
	// OnConnected runs after a verification that succeeded (the provisioner retries the changes it held
	// for connectivity); nil runs nothing.
	OnConnected func(ctx context.Context)
	// Timeout bounds one verification (0: none beyond the clients' own retries); the checks run side by
	// side, so it bounds each of them.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the checker's logs (default: discarded).
	Logger *slog.Logger
}

// New returns a Checker of dv and pc. A nil opts is the defaults.
func New(dv *dataverse.Client, pc *partnercenter.Client, opts *Options) *Checker {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Checker{dv: dv, pc: pc, serviceBus: o.ServiceBus, queue: o.Queue, setHealth: o.SetHealth,
		onConnected: o.OnConnected, timeout: o.Timeout, now: o.Now, log: o.Logger}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Last is the most recent report (zero before the first check).
func (c *Checker) Last() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Verify runs every check, side by side: a service that does not answer does not hold up the others.
func (c *Checker) Verify(ctx context.Context) Report {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	r := Report{At: c.now(), OK: true}
	checks := []struct {
		name, component string
		run             func(ctx context.Context) (okDetail string, err error)
	}{
		{"Dataverse", "dataverse", func(ctx context.Context) (string, error) {
			who, err := c.dv.WhoAmI(ctx)
			return fmt.Sprintf("signed in as application user %s in organization %s", who.UserID, who.OrganizationID), err
		}},
		{"Partner Center", "partnercenter", func(ctx context.Context) (string, error) {
			var first string
			var err error
			for cust, err2 := range c.pc.Customers(ctx, &partnercenter.ListCustomersOptions{PageSize: 1}) {
				err = err2
				if err == nil {
					first = cust.ID
				}
				break
			}
			if first == "" && err == nil {
				return "the customer list answered, empty (app-only token)", nil
			}
			return "customers can be listed (app-only token)", err
		}},
		{"Partner Center app+user", "partnercenter_appuser", func(ctx context.Context) (string, error) {
			_, err := c.pc.RelationshipRequestURL(ctx)
			if errors.Is(err, partnercenter.ErrNoCredential) {
				err = fmt.Errorf("%w: no refresh token configured (PARTNERCENTER_REFRESH_TOKEN_FILE); agreement reads and the direct-sign check are unavailable", errSkipped)
			}
			return "the partner's delegated (app+user) token works", err
		}},
		{"Service Bus", "servicebus_access", func(ctx context.Context) (string, error) {
			return fmt.Sprintf("queue %s can be read", c.queue), c.checkServiceBus(ctx)
		}},
	}
	r.Checks = make([]Check, len(checks))
	var wg sync.WaitGroup
	for i, chk := range checks {
		wg.Go(func() {
			start := time.Now()
			detail, err := chk.run(ctx)
			ch := Check{Name: chk.name, OK: err == nil, Detail: detail, Took: time.Since(start)}
			ch.TookMS = ch.Took.Milliseconds()
			if errors.Is(err, errSkipped) {
				ch.OK, ch.Skipped, ch.Detail = true, true, strings.TrimPrefix(err.Error(), errSkipped.Error()+": ")
			} else if err != nil {
				ch.Detail, ch.System = Explain(chk.name, err), err.Error()
				c.log.Warn("connectivity check failed", "check", chk.name, "error", err)
			}
			r.Checks[i] = ch
			if c.setHealth != nil && !ch.Skipped {
				c.setHealth(chk.component, errIf(err, ch.Detail))
			}
		})
	}
	wg.Wait()
	for _, ch := range r.Checks {
		r.OK = r.OK && ch.OK
	}
	c.mu.Lock()
	c.last = r
	c.mu.Unlock()
	return r
}

// SystemMessage is the failed checks' errors as the clients returned them, for the provider row's system
// message ("" when every check passed).
func (r Report) SystemMessage() string {
	var lines []string
	for _, c := range r.Checks {
		if !c.OK && c.System != "" {
			lines = append(lines, c.Name+": "+c.System)
		}
	}
	return strings.Join(lines, "\n")
}

var errSkipped = errors.New("skipped")

func errIf(err error, detail string) error {
	if err == nil {
		return nil
	}
	return errors.New(detail)
}

func (c *Checker) checkServiceBus(ctx context.Context) error {
	if c.serviceBus == nil {
		return fmt.Errorf("%w: events arrive by webhook", errSkipped)
	}
	rcv, err := c.serviceBus.NewReceiverForQueue(c.queue, nil)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = rcv.Close(closeCtx)
	}()
	peekCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = rcv.PeekMessages(peekCtx, 1, nil)
	return err
}

// Explain turns a check's error into words an admin can act on. The error itself (addresses, Go's network
// errors) goes to the system message and the log, not here.
func Explain(name string, err error) string {
	var sbErr *azservicebus.Error
	var netErr net.Error
	var tokenErr *partnercenter.TokenError
	var signIn interface{ NonRetriable() } // azidentity's failures: no credential worked, or one was refused
	switch {
	case strings.HasPrefix(name, "Dataverse") && dataverse.IsUnauthorized(err):
		return "Dataverse refused the connector's token (401): check that the identity has an application user in the environment."
	case strings.HasPrefix(name, "Dataverse") && dataverse.IsForbidden(err):
		return "Dataverse says the application user lacks permission (403): give it a security role with access to the csp_ tables."
	case strings.HasPrefix(name, "Dataverse") && errors.As(err, &signIn):
		return "The connector could not sign in to Dataverse: no Azure identity was available or it was refused. Check DATAVERSE_AUTH (managed-identity on Azure, or sign in with the Azure CLI for default; none only for a local simulator)."
	case strings.HasPrefix(name, "Partner Center") && partnercenter.IsUnauthorized(err),
		strings.HasPrefix(name, "Partner Center") && (errors.As(err, &tokenErr) || errors.As(err, &signIn)):
		return "Partner Center refused the credentials (401): check PARTNERCENTER_TENANT_ID, PARTNERCENTER_CLIENT_ID and the secret or refresh token, and that the app is registered in Partner Center."
	case strings.HasPrefix(name, "Partner Center") && partnercenter.IsForbidden(err):
		return "Partner Center denied access (403): the app or the user behind the refresh token lacks the Admin or Sales agent role, or consent is missing."
	case strings.HasPrefix(name, "Partner Center") && partnercenter.IsThrottled(err):
		return "Partner Center is throttling the connector (429); it will be checked again on the next run."
	case errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeUnauthorizedAccess:
		return "Service Bus refused access: give the identity the Azure Service Bus Data Receiver role on the namespace, or check the connection string."
	case errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound:
		return "The Service Bus queue does not exist: check SERVICEBUS_QUEUE."
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("The connector could not reach %s in the time allowed: check its address (%s) and the network.", service(name), addressSetting(name))
	case errors.As(err, &netErr):
		return fmt.Sprintf("The connector could not reach %s (network error): check its address (%s) and the network.", service(name), addressSetting(name))
	default:
		return fmt.Sprintf("%s answered with an error the connector does not recognise; the system message and the connector's log have it.", service(name))
	}
}

// service is the service a check calls ("Partner Center app+user" calls Partner Center).
func service(check string) string {
	return strings.TrimSuffix(check, " app+user")
}

// addressSetting names the setting that holds a checked service's address.
func addressSetting(name string) string {
	switch {
	case strings.HasPrefix(name, "Dataverse"):
		return "DATAVERSE_URL"
	case strings.HasPrefix(name, "Partner Center"):
		return "PARTNERCENTER_ENDPOINT"
	}
	return "SERVICEBUS_NAMESPACE or SERVICEBUS_CONNECTION_STRING"
}

// Job returns the Verify Connectivity job: verify, then write the outcome on every Partner Center
// (Automatic) provider row.
func (c *Checker) Job(schedule time.Duration) jobs.Job {
	return jobs.Job{Name: VerifyJobName, Schedule: schedule, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		rep := c.Verify(ctx)
		counts, err := c.record(ctx, rep, nil)
		if err == nil && !rep.OK {
			err = errors.New(rep.Message())
		}
		return counts, err
	}}
}

// record writes the report on the Automatic provider rows (only the one with id, when id is set). A
// Verify Connectivity request a row held is answered by this verification and cleared.
func (c *Checker) record(ctx context.Context, rep Report, id *dataverse.GUID) (jobs.RunCounts, error) {
	filter := dataverse.Eq("csp_type", schema.ProviderAutomatic)
	if id != nil {
		filter = dataverse.Eq("csp_providerid", *id)
	}
	var counts jobs.RunCounts
	for r, err := range c.dv.List(ctx, schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider](), Filter: filter}) {
		if err != nil {
			return counts, err
		}
		var p schema.Provider
		if err := dataverse.Unmarshal(r, &p); err != nil {
			return counts, err
		}
		counts.Processed++
		if err := c.recordProvider(ctx, p, rep); err != nil {
			if dataverse.IsNotFound(err) {
				continue
			}
			counts.Failed++
			continue
		}
		counts.Updated++
		if !rep.OK && p.Type == schema.ProviderAutomatic {
			counts.Failed++ // recorded, but the provider cannot be reached: the run did not do its job for it
		}
	}
	word := "connected"
	if !rep.OK {
		word = "not connected"
	} else if c.onConnected != nil {
		c.onConnected(ctx)
	}
	counts.Summary = fmt.Sprintf("%d provider(s) marked %s", counts.Updated, word)
	return counts, nil
}

// verifyRequestedColumn is csp_verifyrequestedon's display name, for messages.
const verifyRequestedColumn = "Verify requested on"

// recordProvider writes the report on one provider row, with If-Match so that a Verify Connectivity
// request set while the checks ran is kept for its own run rather than cleared.
func (c *Checker) recordProvider(ctx context.Context, p schema.Provider, rep Report) error {
	for attempt := 0; ; attempt++ {
		status, msg := schema.ConnectivityConnected, rep.Message()
		if !rep.OK {
			status = schema.ConnectivityNotConnected
		}
		if p.Type != schema.ProviderAutomatic {
			status, msg = schema.ConnectivityNotVerified, "This provider is not Automatic: the connector does not call it, so there is nothing to verify."
		}
		system := rep.SystemMessage()
		if p.Type != schema.ProviderAutomatic {
			system = ""
		}
		changes := dataverse.Row{"csp_lastverifiedon": rep.At.UTC(), "csp_connectivitystatus": int(status), "csp_systemmessage": system}
		if request.Served(p.VerifyRequestedOn, rep.At, c.now()) {
			changes["csp_verifyrequestedon"] = nil
			if request.InFuture(p.VerifyRequestedOn, rep.At) {
				msg += " " + request.FutureNote(verifyRequestedColumn, p.VerifyRequestedOn, rep.At, "connectivity was verified")
			}
		}
		changes["csp_connectivitymessage"] = msg
		schema.FitRow(schema.TableProvider, changes)
		_, err := c.dv.Update(ctx, schema.SetProviders, p.ID, changes, &dataverse.UpdateOptions{IfMatch: p.ETag})
		if !dataverse.IsConflict(err) || attempt == 2 {
			return err
		}
		if p, err = c.provider(ctx, p.ID); err != nil {
			return err
		}
	}
}

func (c *Checker) provider(ctx context.Context, id dataverse.GUID) (schema.Provider, error) {
	r, err := c.dv.Get(ctx, schema.SetProviders, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Provider]()})
	if err != nil {
		return schema.Provider{}, err
	}
	var p schema.Provider
	return p, dataverse.Unmarshal(r, &p)
}

// HandleProviderRow is the work handler for csp_provider rows: a csp_verifyrequestedon later than
// csp_lastverifiedon runs the checks for that provider (at once, even when dated in the future); one
// dated no later than the last verification is answered on the row and cleared.
func (c *Checker) HandleProviderRow(ctx context.Context, w work.Batch) error {
	p, err := c.provider(ctx, w.Key.ID)
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch request.Of(p.VerifyRequestedOn, p.LastVerifiedOn) {
	case request.None:
		return nil
	case request.Stale:
		note := request.StaleNote(verifyRequestedColumn, p.VerifyRequestedOn, p.LastVerifiedOn, "connectivity was verified",
			"The status shown is from that verification; to verify again, set Verify requested on again (the Verify Connectivity button sets it to now).")
		_, err := c.dv.Update(ctx, schema.SetProviders, p.ID, dataverse.Row{"csp_verifyrequestedon": nil,
			"csp_connectivitymessage": request.WithNote(note, verifyRequestedColumn, p.ConnectivityMessage)}, &dataverse.UpdateOptions{IfMatch: p.ETag})
		if dataverse.IsConflict(err) || dataverse.IsNotFound(err) {
			return nil // changed meanwhile: its own event looks again
		}
		return err
	}
	rep := Report{At: c.now(), OK: true}
	if p.Type == schema.ProviderAutomatic {
		rep = c.Verify(ctx)
	}
	_, err = c.record(ctx, rep, &p.ID)
	return err
}

// ProviderTrigger is the event that wakes HandleProviderRow.
func ProviderTrigger() work.Trigger {
	return work.Trigger{Table: schema.TableProvider, Message: "Update", Columns: []string{"csp_verifyrequestedon"},
		WriteBack: []string{"csp_connectivitystatus", "csp_connectivitymessage", "csp_systemmessage", "csp_lastverifiedon", "csp_verifyrequestedon"}}
}
