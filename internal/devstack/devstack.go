// Package devstack is the embedded default: in one process, a Temporal server (every
// service, persisted in a SQLite file so a stopped run resumes), the Temporal web UI, and
// an OCI registry on loopback whose blobs and manifests live in the state folder.
//
// It imports the Temporal server, which takes minutes to compile cold: only the worker
// and starter programs import it, never the packages that unit tests import.
package devstack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
)

// Default ports: next to, not on, a standard Temporal dev server (7233, UI 8233).
const (
	DefaultFrontendPort = 7243
	DefaultUIPort       = 8243
	DefaultRegistryPort = 5043
	DefaultNamespace    = "default"
)

// Config of the embedded stack. A zero port picks a free one.
type Config struct {
	StateDir     string
	FrontendPort int
	UIPort       int
	RegistryPort int
	Namespace    string
	// NoUI leaves the web UI out (tests).
	NoUI bool
}

// Info is what a running stack publishes in <state>/stack.json for other processes.
type Info struct {
	PID             int    `json:"pid"`
	TemporalAddress string `json:"temporal_address"`
	Namespace       string `json:"namespace"`
	UIURL           string `json:"ui_url,omitempty"`
	RegistryHost    string `json:"registry_host"`
	StateDir        string `json:"state_dir"`
}

// Stack is a running embedded stack.
type Stack struct {
	Info
	server   temporal.Server
	ui       *uiserver.Server
	registry *http.Server
	lock     *os.File
	started  time.Time
	Ready    time.Duration // time from Start to ready
}

// InfoFile is where a running stack describes itself.
func InfoFile(stateDir string) string { return filepath.Join(stateDir, "stack.json") }

// ReadInfo returns the running stack of a state folder, or an error that says how to start one.
func ReadInfo(stateDir string) (Info, error) {
	b, err := os.ReadFile(InfoFile(stateDir))
	if err != nil {
		return Info{}, fmt.Errorf("no embedded stack is running in %s", stateDir)
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return Info{}, fmt.Errorf("%s: %w", InfoFile(stateDir), err)
	}
	if in.PID <= 0 || syscall.Kill(in.PID, 0) != nil {
		return Info{}, fmt.Errorf("no embedded stack is running in %s (pid %d has ended)", stateDir, in.PID)
	}
	return in, nil
}

// Start brings the stack up and waits until the frontend answers.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	start := time.Now()
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.StateDir == "" {
		return nil, errors.New("devstack: a state folder is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	lock, err := lockState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	s := &Stack{lock: lock, started: start}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()

	// Ports: pick free ones where asked, and check the fixed ones before the servers
	// (whose listen errors would end the process) try them.
	fixedFrontend := cfg.FrontendPort != 0
	ports := map[string]*int{"Temporal frontend": &cfg.FrontendPort, "registry": &cfg.RegistryPort}
	if !cfg.NoUI {
		ports["web UI"] = &cfg.UIPort
	}
	for what, p := range ports {
		if err := claimPort(what, p); err != nil {
			return nil, err
		}
	}
	// History, matching and worker gRPC ports and the four membership ports. With a fixed
	// frontend port they follow it, so a restarted stack comes back on the addresses its
	// membership table remembers instead of waiting for the old ones to expire.
	internal := make([]int, 7)
	for i := range internal {
		if fixedFrontend {
			internal[i] = cfg.FrontendPort + 1 + i
		}
		if err := claimPort("internal Temporal", &internal[i]); err != nil {
			return nil, err
		}
	}

	s.Namespace = cfg.Namespace
	s.StateDir = cfg.StateDir
	s.TemporalAddress = fmt.Sprintf("127.0.0.1:%d", cfg.FrontendPort)
	s.RegistryHost = fmt.Sprintf("127.0.0.1:%d", cfg.RegistryPort)

	// Registry.
	reg, err := registry.NewServer(filepath.Join(cfg.StateDir, "registry"), nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.RegistryHost)
	if err != nil {
		return nil, fmt.Errorf("registry port %d: %w", cfg.RegistryPort, err)
	}
	s.registry = &http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.registry.Serve(ln) }()

	// Temporal.
	if err := s.startTemporal(cfg, internal); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}

	// Web UI.
	if !cfg.NoUI {
		s.UIURL = fmt.Sprintf("http://127.0.0.1:%d", cfg.UIPort)
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			TemporalGRPCAddress: s.TemporalAddress, Host: "127.0.0.1", Port: cfg.UIPort, EnableUI: true,
			DefaultNamespace: cfg.Namespace, HideLogs: true, CORS: uiconfig.CORS{CookieInsecure: true},
		}))
		go func() { _ = s.ui.Start() }()
	}

	s.PID = os.Getpid()
	b, _ := json.MarshalIndent(s.Info, "", "  ")
	if err := os.WriteFile(InfoFile(cfg.StateDir), b, 0o644); err != nil {
		return nil, err
	}
	s.Ready = time.Since(start)
	ok = true
	return s, nil
}

func (s *Stack) startTemporal(cfg Config, p []int) error {
	dir := filepath.Join(cfg.StateDir, "temporal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "temporal.db")
	sqlCfg := &config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: dbPath,
		ConnectAttributes: map[string]string{"mode": "rwc", "_journal_mode": "wal", "_synchronous": "2"}}
	if _, err := os.Stat(dbPath); os.IsNotExist(err) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return fmt.Errorf("create the Temporal database: %w", err)
		}
	}
	if err := forgetMembers(dbPath); err != nil {
		return err
	}
	sas := map[string]enumspb.IndexedValueType{}
	for _, n := range release.SearchAttributes {
		sas[n] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	ns, err := sqlite.NewNamespaceConfig("active", cfg.Namespace, false, sas)
	if err != nil {
		return err
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", cfg.Namespace, err)
	}

	svc := func(grpc, membership int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: "127.0.0.1"}}
	}
	conf := &config.Config{
		Global: config.Global{Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"}},
		Persistence: config.Persistence{
			DefaultStore: sqliteplugin.PluginName, VisibilityStore: sqliteplugin.PluginName, NumHistoryShards: 1,
			DataStores: map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace: false, FailoverVersionIncrement: 10, MasterClusterName: "active", CurrentClusterName: "active",
			ClusterInformation: map[string]cluster.ClusterInformation{"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: s.TemporalAddress}},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": svc(cfg.FrontendPort, p[3]),
			"history":  svc(p[0], p[4]),
			"matching": svc(p[1], p[5]),
			"worker":   svc(p[2], p[6]),
		},
		Archival: config.Archival{History: config.HistoryArchival{State: "disabled"}, Visibility: config.VisibilityArchival{State: "disabled"}},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History: config.HistoryArchivalNamespaceDefaults{State: "disabled"}, Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"}}},
		PublicClient: config.PublicClient{HostPort: s.TemporalAddress},
	}
	logPath := filepath.Join(cfg.StateDir, "temporal.log")
	// The server ends the process on a fatal error; say why on stderr, not only in its log.
	logger := tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: "warn", OutputFile: logPath}).WithOptions(zap.WithFatalHook(fatalHook{log: logPath})))
	dc := dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():   true,
		dynamicconfig.EnableEagerWorkflowStart.Key():                true,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dc),
	)
	if err != nil {
		return fmt.Errorf("configure the Temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start the Temporal server (log: %s): %w", filepath.Join(cfg.StateDir, "temporal.log"), err)
	}
	s.server = srv
	return nil
}

// waitReady dials the frontend and makes sure the namespace and search attributes exist
// (older state folders may lack attributes added since).
func (s *Stack) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Namespace: s.Namespace, Logger: quietLogger{}})
	if err != nil {
		return fmt.Errorf("the embedded Temporal server did not answer at %s: %w", s.TemporalAddress, err)
	}
	defer c.Close()
	for {
		_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace})
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s not ready: %w", s.Namespace, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, n := range release.SearchAttributes {
		if _, ok := list.CustomAttributes[n]; !ok {
			missing[n] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) > 0 {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: s.Namespace, SearchAttributes: missing})
		var exists *serviceerror.AlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("register search attributes: %w", err)
		}
	}
	return nil
}

// Stop stops everything and releases the state folder.
func (s *Stack) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if s.server != nil {
		_ = s.server.Stop()
	}
	if s.registry != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.registry.Shutdown(ctx)
		cancel()
	}
	if s.lock != nil {
		if s.StateDir != "" {
			_ = os.Remove(InfoFile(s.StateDir))
		}
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		_ = s.lock.Close()
		s.lock = nil
	}
}

func lockState(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		msg := fmt.Sprintf("the embedded stack in %s is already running", dir)
		if in, err := ReadInfo(dir); err == nil {
			msg += fmt.Sprintf(" (pid %d, Temporal at %s): use it with TEMPORAL_ADDRESS=%s, or choose another --state folder", in.PID, in.TemporalAddress, in.TemporalAddress)
		}
		return nil, errors.New(msg)
	}
	return f, nil
}

func claimPort(what string, p *int) error {
	if *p == 0 {
		*p = pickPort()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*p))
	if err != nil {
		return fmt.Errorf("%s port %d is taken: %w (choose another with the port flags)", what, *p, err)
	}
	*p = ln.Addr().(*net.TCPAddr).Port
	return ln.Close()
}

// pickPort finds a free port below the kernel's ephemeral range. A port is claimed (a
// listen, then a close) some time before its server binds it; a port from the ephemeral
// range, which is what port 0 gives, can meanwhile become the local port of any outgoing
// connection on the machine, and the Temporal server ends the process when a bind fails.
// Below the range only a program that binds that very port can take it. 0 when none is
// found, to let the kernel choose after all.
func pickPort() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const floor = 10000
	if lo-floor < 1000 {
		return 0
	}
	for i := 0; i < 200; i++ {
		p := floor + rand.IntN(lo-floor)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			ln.Close()
			return p
		}
	}
	return 0
}

// fatalHook reports a fatal error of the embedded server on stderr before the process
// ends, since the server's own log goes to a file in the state folder.
type fatalHook struct{ log string }

func (h fatalHook) OnWrite(ce *zapcore.CheckedEntry, fields []zapcore.Field) {
	msg := ce.Message
	for _, f := range fields {
		if f.Key == "error" {
			if err, ok := f.Interface.(error); ok {
				msg += ": " + err.Error()
			}
		}
	}
	fmt.Fprintf(os.Stderr, "embedded Temporal server: fatal: %s (log: %s)\n", msg, h.log)
	os.Exit(1)
}

// quietLogger drops the SDK client's own logs during the readiness wait.
type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

// forgetMembers clears the membership table. The state folder is locked, so every host in
// it belongs to an earlier run of this stack; left in place, a restart on other ports
// waits for those dead hosts to expire before it serves.
func forgetMembers(dbPath string) error {
	if _, err := os.Stat(dbPath); err != nil {
		return nil
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("reset the Temporal membership table: %w", err)
	}
	return nil
}
