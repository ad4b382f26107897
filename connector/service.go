package connector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// Service is the running connector: intake (Service Bus and/or webhook), work queue and dispatcher, jobs
// and the HTTP server. Any number of replicas may run against one environment.
type Service struct {
	cfg        Config
	log        *slog.Logger
	Metrics    *metrics.Recorder
	Health     *Health
	DV         *dataverse.Client
	PC         *partnercenter.Client
	ServiceBus *azservicebus.Client
	Dispatcher *work.Dispatcher
	Queue      *work.Queue
	Gate       *intake.Gate
	Intake     *intake.Intake
	Jobs       *jobs.Runner
	Conn       *connectivity.Checker
	Prov       *provisioning.Provisioner
	// Accounts syncs and maps provider accounts; Notifications delivers what people and flows must know.
	Accounts      *provideraccounts.Workflow
	Subscriptions *subscriptions.Workflow
	Agreements    *agreements.Workflow
	Notifications *notify.Notifications
	topic         *notify.TopicPublisher
	listener      *intake.Listener
	httpLn        net.Listener

	ready    chan struct{}
	addr     net.Addr
	addrOnce sync.Once
	// started is set once start has configured the gate (organization, own user, triggers); the webhook
	// answers 503 before, so Dataverse retries instead of the event being judged by an empty gate.
	started atomic.Bool
	// submitting counts submitAll goroutines still handing rows to the queue.
	submitting inflight
	// callbacks is the rule for webhook subscriptions' callback URLs, for subscribing and delivering.
	callbacks notify.CallbackPolicy
	// API serves /api/v1 (answering 404 when no authentication is configured).
	API *api.Server
}

// ServiceOptions carry what the configuration does not: clients built elsewhere (the sandbox's, tests'),
// and tuning for tests.
type ServiceOptions struct {
	Logger     *slog.Logger
	Metrics    *metrics.Recorder
	DV         *dataverse.Client
	PC         *partnercenter.Client
	ServiceBus *azservicebus.Client
	// JobTick is how often job schedules are checked (default 30 s); VerifyEvery the default schedule of
	// Verify Connectivity (15 min); SweepEvery the provisioning sweep's (2 min); SyncEvery the provider
	// account sync's (6 h).
	JobTick     time.Duration
	VerifyEvery time.Duration
	SweepEvery  time.Duration
	SyncEvery   time.Duration
	// CheckEvery is the Attestation Check's schedule (1 h).
	CheckEvery time.Duration
	// AllowHTTPLoopbackWebhooks lets webhook subscriptions call loopback, over http too (the sandbox, tests).
	AllowHTTPLoopbackWebhooks bool
	// Now is the clock of the workflows (nil: time.Now); the sandbox and tests move it.
	Now func() time.Time
	// Listener tunes the Service Bus listener (Queue and MaxConcurrent come from the configuration).
	Listener intake.ListenerOptions
	// Listen, when set, is used instead of listening on cfg.HTTPAddr.
	Listen net.Listener
	// APIAuth, when set, authenticates the HTTP API's callers instead of the configuration's (the sandbox's
	// demo keys, tests' local token issuer).
	APIAuth *apiauth.Authenticator
	// VerifyTimeout bounds one verification of connectivity (0: none beyond the clients' own retries).
	VerifyTimeout time.Duration
	// SyncProgress, when set, is told how the Provider Account Sync is getting on (a command's progress
	// line).
	SyncProgress func(provideraccounts.SyncProgress)
	// SubscriptionResult, when set, is told what each subscription sync did (a command's -o json).
	SubscriptionResult func(subscriptions.SyncResult)
	// LeaveWokenRows makes the workflows leave the rows they unblock to the running connector's sweep
	// instead of queueing them: for a command that provisions one change with no queue of the service's
	// running in its process.
	LeaveWokenRows bool
}

// NewService wires the connector. It makes no calls; Run does.
func NewService(cfg Config, opts ServiceOptions) (*Service, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := opts.Metrics
	if m == nil {
		m = metrics.New()
	}
	if opts.DV == nil || opts.PC == nil {
		return nil, errors.New("connector: the service needs a Dataverse and a Partner Center client")
	}
	s := &Service{cfg: cfg, log: log, Metrics: m, Health: NewHealth(), DV: opts.DV, PC: opts.PC, ServiceBus: opts.ServiceBus,
		Dispatcher: work.NewDispatcher(), ready: make(chan struct{}), httpLn: opts.Listen, callbacks: notify.CallbackPolicy{AllowLoopback: opts.AllowHTTPLoopbackWebhooks, AllowHosts: cfg.WebhookAllowHosts}}
	s.Queue = work.NewQueue(s.Dispatcher.Dispatch, work.Options{Workers: cfg.Workers, Limit: cfg.QueueLimit, Logger: log.With("component", "queue"), Metrics: m})
	s.Gate = &intake.Gate{}
	s.Intake = &intake.Intake{Gate: s.Gate, Queue: s.Queue, Logger: log.With("component", "intake"), Metrics: m}
	s.Conn = connectivity.New(s.DV, s.PC, &connectivity.Options{ServiceBus: s.ServiceBus, Queue: cfg.ServiceBusQueue, SetHealth: s.Health.Set,
		Timeout: opts.VerifyTimeout, Now: opts.Now, Logger: log,
		OnConnected: func(ctx context.Context) {
			if n, err := s.Prov.WakeNotConnected(ctx); err != nil {
				log.Warn("could not wake the changes held for connectivity; the sweep will", "error", err)
			} else if n > 0 {
				log.Info("connectivity verified: retrying held license changes", "count", n)
			}
		}})
	// Notifications wait in the outbox table until delivered, so one a stopped replica was delivering is
	// delivered by another.
	no := notify.Options{Logger: log, Now: opts.Now, Outbox: s.DV, Instance: cfg.Instance}
	if cfg.NotifyInApp && len(cfg.NotifyUsers) > 0 {
		no.InApp = &notify.InAppNotifier{DV: s.DV, Recipients: cfg.NotifyUsers}
	}
	if cfg.NotifyWebhooks {
		no.Webhooks = &notify.WebhookDeliverer{DV: s.DV, Logger: log, Callbacks: s.callbacks}
	}
	if cfg.NotifyTopic != "" && s.ServiceBus != nil {
		topic, err := notify.NewTopicPublisher(s.ServiceBus, cfg.NotifyTopic)
		if err != nil {
			return nil, fmt.Errorf("connector: notification topic %s: %w", cfg.NotifyTopic, err)
		}
		s.topic, no.Topic = topic, topic
	}
	s.Notifications = notify.New(no)
	po := &provisioning.Options{Publish: func(n notify.Notification) { s.Notifications.Publish(n) },
		Wake:     func(ctx context.Context, ids []dataverse.GUID) { s.submitAll(ctx, schema.TableLicenseChangeLog, ids) },
		ClaimTTL: cfg.ClaimTTL, Now: opts.Now, Logger: log.With("workflow", "provisioning")}
	if opts.LeaveWokenRows {
		po.Wake = nil
	}
	if cfg.NotifyInApp && len(cfg.NotifyUsers) > 0 {
		po.NoticeUsers = (&notify.InAppNotifier{DV: s.DV, Recipients: cfg.NotifyUsers}).Notify
	}
	s.Prov = provisioning.New(s.DV, s.PC, po)
	s.Accounts = provideraccounts.New(s.DV, s.PC, &provideraccounts.Options{
		Publish:   func(n notify.Notification) bool { _, kept := s.Notifications.PublishKept(n); return kept },
		Progress:  opts.SyncProgress,
		BatchSize: cfg.DataverseBatchSize, DigestOver: cfg.NotifyDigestOver, Now: opts.Now, Logger: log.With("workflow", "provider-accounts")})
	ao := &agreements.Options{Publish: func(n notify.Notification) { s.Notifications.Publish(n) },
		Wake:      func(ctx context.Context, ids []dataverse.GUID) { s.submitAll(ctx, schema.TableAgreement, ids) },
		BatchSize: cfg.DataverseBatchSize, LinkLifetime: cfg.LinkLifetime, Now: opts.Now, Logger: log.With("workflow", "agreements")}
	if cfg.NotifyInApp {
		ao.NoticeUser = func(ctx context.Context, user dataverse.GUID, n notify.Notice) error {
			return (&notify.InAppNotifier{DV: s.DV, Recipients: []dataverse.GUID{user}}).Notify(ctx, n)
		}
	}
	s.Agreements = agreements.New(s.DV, s.PC, ao)
	s.Subscriptions = subscriptions.New(s.DV, s.PC, &subscriptions.Options{
		Publish:   func(n notify.Notification) bool { _, kept := s.Notifications.PublishKept(n); return kept },
		Result:    opts.SubscriptionResult,
		BatchSize: cfg.DataverseBatchSize, Now: opts.Now, Logger: log.With("workflow", "subscriptions")})
	auth := opts.APIAuth
	if auth == nil {
		var err error
		if auth, err = cfg.APIAuth(nil); err != nil {
			return nil, fmt.Errorf("connector: HTTP API: %w", err)
		}
	}
	verifyEvery := cmp.Or(opts.VerifyEvery, 15*time.Minute)
	sweepEvery := cmp.Or(opts.SweepEvery, 2*time.Minute)
	syncEvery := cmp.Or(opts.SyncEvery, 6*time.Hour)
	s.Jobs = jobs.New(s.DV, []jobs.Job{s.Conn.Job(verifyEvery), s.Prov.SweepJob(sweepEvery), s.Prov.ReportJob(7*24*time.Hour, cfg.ReportAfter), s.Accounts.Job(syncEvery),
		s.Agreements.CheckJob(cmp.Or(opts.CheckEvery, time.Hour)), s.Subscriptions.Job(syncEvery)},
		jobs.Options{Instance: cfg.Instance, Tick: opts.JobTick, Logger: log, Metrics: m, Now: opts.Now, Publish: func(n notify.Notification) { s.Notifications.Publish(n) }})
	s.API = api.New(s.apiDeps(), api.Options{Auth: auth, PublicURL: cfg.PublicURL, RatePerMinute: cfg.APIRate, Logger: log.With("component", "api"), Metrics: m})
	// Every trigger in Triggers() needs its handler here (a test checks).
	s.Dispatcher.Handle(connectivity.ProviderTrigger().Table, s.Conn.HandleProviderRow, connectivity.ProviderTrigger())
	s.Dispatcher.Handle(jobs.RowTrigger().Table, s.Jobs.HandleJobRow, jobs.RowTrigger())
	s.Dispatcher.Handle(schema.TableLicenseChangeLog, s.Prov.Handle, provisioning.Triggers()...)
	s.Dispatcher.Handle(schema.TableSubscription, s.Prov.HandleSubscription, provisioning.SubscriptionTriggers()...)
	s.Dispatcher.Handle(schema.TableProviderAccount, s.Accounts.Handle, provideraccounts.Triggers()...)
	s.Dispatcher.Handle(schema.TableAgreement, s.Agreements.Handle, agreements.Triggers()...)
	s.Dispatcher.Handle(schema.TableAgreementTemplate, s.Agreements.HandleTemplate, agreements.TemplateTriggers()...)
	if s.ServiceBus != nil {
		lo := opts.Listener
		lo.Queue = cfg.ServiceBusQueue
		if lo.MaxConcurrent <= 0 {
			lo.MaxConcurrent = 2 * cfg.Workers
		}
		lo.Logger, lo.Metrics = log, m
		s.listener = intake.NewListener(s.ServiceBus, s.Intake, lo)
		s.Health.Check("servicebus", func() error {
			if s.listener.Connected() {
				return nil
			}
			if e := s.listener.Err(); e != "" {
				return errors.New(e)
			}
			return errors.New("not connected yet")
		})
	}
	s.Health.Set("dataverse", errors.New("not checked yet"))
	return s, nil
}

// apiDeps is what the HTTP API uses of the service.
func (s *Service) apiDeps() api.Deps {
	return api.Deps{DV: s.DV, Prov: s.Prov, Accounts: s.Accounts, Agreements: s.Agreements, Conn: s.Conn, Jobs: s.Jobs, Queue: s.Queue,
		Callbacks: s.callbacks, Started: s.started.Load}
}

// submitAll hands rows to the work queue from a handler or a job without holding it up: a full queue makes
// the submissions wait, never the caller (whose worker the queue may need to drain). They outlive the
// caller's context; the queue's shutdown ends them (Submit answers ErrShuttingDown).
func (s *Service) submitAll(ctx context.Context, table string, ids []dataverse.GUID) {
	ctx = context.WithoutCancel(ctx)
	s.submitting.add()
	go func() {
		defer s.submitting.done()
		for _, id := range ids {
			if err := s.Queue.Submit(ctx, work.Item{Key: work.Key{Table: table, ID: id}, Source: work.SourceSweep}); err != nil {
				s.log.Warn("could not queue a row; the next sweep will find it", "table", table, "id", id, "error", err)
				return
			}
		}
	}()
}

// Work runs fn with the work queue running, outside Run (for commands that run one job), then waits for
// the work fn caused — rows a sweep submitted, changes a success woke — to finish before it returns. A row
// whose run failed and waits to be tried again is not waited for: the running connector's sweep finds it.
func (s *Service) Work(ctx context.Context, fn func(ctx context.Context) error) error {
	qctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { s.Notifications.Run(qctx) })
		s.Queue.Run(qctx)
		wg.Wait()
	}()
	err := fn(ctx)
	// Wait until the queue is idle with no submission under way: a run may submit more (a success wakes
	// the changes it held), so both are checked again after each wait.
	for s.Queue.Len() > 0 || s.submitting.count() > 0 {
		for _, signal := range []func() <-chan struct{}{s.submitting.zero, s.Queue.Idle} {
			select {
			case <-ctx.Done():
				stop()
				<-done
				return errors.Join(err, ctx.Err())
			case <-signal():
			}
		}
	}
	// What the work published is delivered (or given up on) before the command exits.
	flushCtx, cancel := context.WithTimeout(ctx, time.Minute)
	if ferr := s.Notifications.Flush(flushCtx); ferr != nil {
		s.log.Warn("notifications not delivered before exit", "error", ferr)
	}
	cancel()
	stop()
	<-done
	return err
}

// Handler is the HTTP surface: the webhook intake (when a key is configured), health and metrics.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.WebhookKey != "" {
		webhook := s.Intake.Webhook(intake.WebhookOptions{Key: s.cfg.WebhookKey, Header: s.cfg.WebhookHeader})
		mux.HandleFunc(intake.WebhookPath, func(w http.ResponseWriter, r *http.Request) {
			if !s.started.Load() {
				w.Header().Set("Retry-After", "30")
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the connector is starting: it has not reached Dataverse yet"})
				return
			}
			webhook.ServeHTTP(w, r)
		})
	} else {
		mux.HandleFunc(intake.WebhookPath, func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "the webhook intake is off: set CONNECTOR_WEBHOOK_KEY"})
		})
	}
	mux.Handle(api.Prefix+"/", s.API)
	if s.cfg.HealthAddr == "" {
		s.probes(mux)
	}
	return mux
}

// probes adds health and metrics to mux: on the main server, or on CONNECTOR_HEALTH_ADDR's own.
func (s *Service) probes(mux *http.ServeMux) {
	mux.Handle("/healthz", s.Health.Liveness())
	mux.Handle("/readyz", s.Health.Readiness())
	mux.Handle("/metrics", s.Metrics.Handler())
}

// Addr waits for Run to start listening and returns the HTTP server's address (nil when listening failed).
func (s *Service) Addr() net.Addr {
	<-s.ready
	return s.addr
}

// Start learns who the connector is in Dataverse (WhoAmI: the organization it serves and its own user,
// for the loop guard) and creates missing job rows. It retries until Dataverse answers or ctx ends, so a
// replica started before Dataverse is reachable waits instead of exiting (readiness says why).
func (s *Service) start(ctx context.Context) error {
	delay := time.Second
	for {
		who, err := s.DV.WhoAmI(ctx)
		if err == nil {
			s.Gate.OrganizationID, s.Gate.SelfUserID = who.OrganizationID, who.UserID
			s.Gate.Triggers = s.Dispatcher.Triggers()
			s.started.Store(true)
			s.Health.Set("dataverse", nil)
			s.log.Info("connected to Dataverse", "organization_id", who.OrganizationID, "user_id", who.UserID)
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if dataverse.IsUnauthorized(err) || dataverse.IsForbidden(err) {
			s.Health.Set("dataverse", errors.New(connectivity.Explain("Dataverse", err)))
		} else {
			s.Health.Set("dataverse", err)
		}
		s.log.Warn("Dataverse is not reachable yet; retrying", "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(delay*2, time.Minute)
	}
	return s.Jobs.Ensure(ctx)
}

// Run serves until ctx ends, then shuts down gracefully: intake stops (no new messages, webhook answers
// 503), running work gets cfg.ShutdownTimeout to finish, messages still held are abandoned to another
// replica, and Run returns.
func (s *Service) Run(parent context.Context) error {
	ctx, stop := context.WithCancel(parent)
	defer stop()
	ln, err := s.listen()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 70 * time.Second, MaxHeaderBytes: 64 << 10}
	srvErr := make(chan error, 2)
	go func() { srvErr <- srv.Serve(ln) }()
	if s.cfg.HealthAddr != "" {
		hln, err := net.Listen("tcp", s.cfg.HealthAddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("connector: listen on CONNECTOR_HEALTH_ADDR %s: %w", s.cfg.HealthAddr, err)
		}
		mux := http.NewServeMux()
		s.probes(mux)
		hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { srvErr <- hsrv.Serve(hln) }()
		defer hsrv.Close()
	}
	s.log.Info("serving HTTP", "addr", ln.Addr().String(), "webhook", s.cfg.WebhookKey != "", "servicebus", s.listener != nil)

	if err := s.start(ctx); err != nil {
		_ = srv.Close()
		if parent.Err() != nil {
			return nil
		}
		return err
	}

	// The queue, the jobs and the listener run until their Shutdown, not until ctx: ctx ending begins a
	// graceful shutdown, which lets their running work finish within the bound.
	runCtx, endRun := context.WithCancel(context.WithoutCancel(ctx))
	defer endRun()
	var wg sync.WaitGroup
	wg.Go(func() { s.Queue.Run(runCtx) })
	wg.Go(func() { s.Jobs.Run(runCtx) })
	// Notifications outlive the work that publishes them, by a short flush at the end.
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	notifyDone := make(chan struct{})
	go func() { defer close(notifyDone); s.Notifications.Run(notifyCtx) }()
	if s.listener != nil {
		wg.Go(func() { _ = s.listener.Run(runCtx) })
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("connector: HTTP server: %w", err)
			s.log.Error("HTTP server failed; stopping", "error", err)
			stop()
		}
	}
	s.log.Info("shutting down", "running_work_bound", s.cfg.ShutdownTimeout)
	s.shutdown(ctx, srv)
	wg.Wait()
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if err := s.Notifications.Flush(flushCtx); err != nil {
		s.log.Warn("notifications still undelivered at shutdown", "error", err)
	}
	cancelFlush()
	stopNotify()
	<-notifyDone
	if s.topic != nil {
		closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = s.topic.Close(closeCtx)
		cancelClose()
	}
	s.log.Info("stopped")
	return runErr
}

// shutdown stops the intake and lets running work finish within cfg.ShutdownTimeout, all side by side:
// the HTTP server (a webhook request may be waiting on the queue, whose shutdown answers it), the
// listener (its messages waiting in the queue are abandoned at once), the queue and the jobs (the API's
// runs too).
func (s *Service) shutdown(ctx context.Context, srv *http.Server) {
	bound, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		httpCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(httpCtx)
	})
	wg.Go(func() { _ = s.Queue.Shutdown(bound) })
	wg.Go(func() { _ = s.Jobs.Shutdown(bound) })
	if s.listener != nil {
		wg.Go(func() { _ = s.listener.Shutdown(bound) })
	}
	wg.Wait()
}

func (s *Service) listen() (net.Listener, error) {
	var ln net.Listener
	var err error
	if s.httpLn != nil {
		ln = s.httpLn
	} else if ln, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		s.addrOnce.Do(func() { close(s.ready) }) // Addr answers nil rather than waiting forever
		return nil, fmt.Errorf("connector: listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.addrOnce.Do(func() { s.addr = ln.Addr(); close(s.ready) })
	return ln, nil
}

// inflight counts goroutines under way and signals when none is.
type inflight struct {
	mu     sync.Mutex
	n      int
	isZero chan struct{} // closed while n is 0
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 || f.isZero == nil {
		f.isZero = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.isZero)
	}
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// zero returns a channel closed while nothing is under way.
func (f *inflight) zero() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return f.isZero
}
