// Command worker runs the release workflows and activities.
//
// It connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (and the TEMPORAL_TLS_* variables),
// or with --dev starts the embedded default (Temporal server, web UI and OCI registry in
// this process) and serves it until stopped, so that `starter` commands in other terminals
// use it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"dgpu-release/internal/catalog"
	"dgpu-release/internal/certify"
	"dgpu-release/internal/cluster"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/metrics"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
	"dgpu-release/internal/tclient"
	"dgpu-release/internal/wiring"
)

type flags struct {
	dev                     bool
	stateDir                string
	backend                 string
	registry                string
	policy                  string
	projectRepo, driverRepo string
	logLevel                string
	frontend, ui, reg       int
	catalogProject          string
	catalogURL              string
	ubiLayers               string
	preflight               string
	graphURL, channels      string
	github                  bool
	githubAPI               string
	tablePR                 bool
	i915Repo, firmwareRepo  string
	kubeconfig              string
	buildNS, gitURI         string
	pushSecret              string
	testNS, canary          string
	testImage, testCommand  string
	debugNS                 string
	healthAddr              string
	// given names the flags given on the command line.
	given map[string]bool
}

func main() {
	f, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; the flag package has printed a parse error with the
// usage, and parseFlags prints the error of a stray argument.
func parseFlags(args []string, errOut io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.BoolVar(&f.dev, "dev", false, "start the embedded default (Temporal server, web UI, registry) and serve it")
	fs.StringVar(&f.stateDir, "state", tclient.DefaultStateDir(), "state folder of the embedded default and the local forge and catalog (env DGPU_STATE_DIR)")
	fs.StringVar(&f.backend, "backend", "rehearsal", "backends for build, GPU test and debug: rehearsal (stand-ins) or cluster (OpenShift Builds, KMM, Jobs)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "cluster backend: kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&f.buildNS, "build-namespace", "dgpu-release", "cluster backend: namespace of the OpenShift Builds")
	fs.StringVar(&f.gitURI, "git-uri", "", "cluster backend: the project repository the builds clone")
	fs.StringVar(&f.pushSecret, "push-secret", "", "cluster backend: secret with push credentials for the staging repository")
	fs.StringVar(&f.testNS, "test-namespace", "dgpu-release", "cluster backend: namespace of the GPU test Module and Job")
	fs.StringVar(&f.canary, "canary", "dgpu-release/canary=true", "cluster backend: label selector of the canary GPU nodes")
	fs.StringVar(&f.testImage, "test-image", "", "cluster backend: image of the GPU test tools (default UBI minimal)")
	fs.StringVar(&f.testCommand, "test-command", "clinfo", "cluster backend: GPU test command, space separated")
	fs.StringVar(&f.debugNS, "debug-namespace", "intel-dgpu-debug", "cluster backend: namespace of the debug workloads")
	fs.StringVar(&f.healthAddr, "health-addr", "", "serve /healthz, /readyz and Prometheus /metrics on this address (such as :8080)")
	fs.StringVar(&f.registry, "registry", "", "registry host for staged and released images (required without --dev)")
	fs.StringVar(&f.policy, "policy", string(certify.PolicyRoot), "certification policy: container, root, scratch-nonroot, scratch-root")
	fs.StringVar(&f.projectRepo, "project-repo", wiring.DefaultProjectRepo, "owner/name that gets issues about failed releases")
	fs.StringVar(&f.driverRepo, "driver-repo", wiring.DefaultDriverRepo, "owner/name that gets escalated driver bugs")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.catalogProject, "catalog-project", "", "certification project ID: record images in the catalog API (key in $DGPU_CATALOG_API_KEY) instead of the local catalog")
	fs.StringVar(&f.catalogURL, "catalog-url", "", "catalog API base URL (default https://catalog.redhat.com/api/containers/v1/)")
	fs.StringVar(&f.ubiLayers, "ubi-layers", "", "file of certified UBI layer IDs for BasedOnUbi (default: the catalog API when configured)")
	fs.StringVar(&f.preflight, "preflight", "", "certify with this installed openshift-preflight binary instead of the native checks")
	fs.StringVar(&f.graphURL, "graph-url", "", "OpenShift update graph URL (such as "+ocp.DefaultGraphURL+"): take OpenShift releases from it instead of the sample list")
	fs.StringVar(&f.channels, "channels", "stable-4.16", "comma-separated update channels to read with --graph-url")
	fs.BoolVar(&f.github, "github", false, "use GitHub for the Dockerfile, release table, issues and driver tags (token in $GITHUB_TOKEN) instead of the local forge")
	fs.StringVar(&f.githubAPI, "github-api-url", "", "GitHub API URL (GitHub Enterprise: https://HOST/api/v3/)")
	fs.BoolVar(&f.tablePR, "table-pr", false, "with --github: update the release table by pull request instead of a commit to main")
	fs.StringVar(&f.i915Repo, "i915-repo", wiring.DefaultI915Repo, "owner/name of the i915 backports repository")
	fs.StringVar(&f.firmwareRepo, "firmware-repo", wiring.DefaultFirmwareRepo, "owner/name of the GPU firmware repository")
	fs.IntVar(&f.frontend, "temporal-port", devstack.DefaultFrontendPort, "--dev: Temporal frontend port")
	fs.IntVar(&f.ui, "ui-port", devstack.DefaultUIPort, "--dev: web UI port")
	fs.IntVar(&f.reg, "registry-port", devstack.DefaultRegistryPort, "--dev: registry port")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q: the worker takes flags only (-h lists them; a flag's value goes with = or right after it)", fs.Arg(0))
		fmt.Fprintln(errOut, "error:", err)
		return f, err
	}
	f.given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	return f, nil
}

func run(ctx context.Context, f flags) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q is not valid: accepted are debug, info, warn, error", f.logLevel)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(logger)
	// Every flag, variable and file is checked before anything starts or is written.
	ignored, err := f.validate(ctx)
	if err != nil {
		return err
	}
	for _, msg := range ignored {
		logger.Warn("flag ignored", "why", msg)
	}
	var clusterOpts *wiring.ClusterOptions
	if f.backend == "cluster" {
		clusterOpts = &wiring.ClusterOptions{Kubeconfig: f.kubeconfig, BuildNamespace: f.buildNS, GitURI: f.gitURI, PushSecret: f.pushSecret,
			TestNamespace: f.testNS, Canary: f.canary, TestImage: f.testImage, TestCommand: strings.Fields(f.testCommand), DebugNamespace: f.debugNS}
	}
	policy := certify.Policy(f.policy)
	opts, err := tclient.FromEnv(logger)
	if err != nil {
		return err
	}
	// The health address is claimed before anything starts, so a taken port stops nothing.
	var healthLn net.Listener
	if f.healthAddr != "" {
		if healthLn, err = net.Listen("tcp", f.healthAddr); err != nil {
			return fmt.Errorf("--health-addr %s: %w", f.healthAddr, err)
		}
		defer healthLn.Close()
	}
	registryHost := f.registry
	if f.dev {
		start := time.Now()
		stack, err := devstack.Start(ctx, devstack.Config{StateDir: f.stateDir, FrontendPort: f.frontend, UIPort: f.ui, RegistryPort: f.reg})
		if err != nil {
			return err
		}
		defer stack.Stop()
		logger.Info("embedded default started", "temporal", stack.TemporalAddress, "ui", stack.UIURL, "registry", stack.RegistryHost, "state", f.stateDir, "ready_ms", time.Since(start).Milliseconds())
		opts.HostPort, opts.Namespace = stack.TemporalAddress, stack.Namespace
		registryHost = stack.RegistryHost
	}
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: f.stateDir, RegistryHost: registryHost, ProjectRepo: f.projectRepo, DriverRepo: f.driverRepo, Policy: policy,
		CatalogProject: f.catalogProject, CatalogURL: f.catalogURL, UBILayers: f.ubiLayers, Preflight: f.preflight,
		GraphURL: f.graphURL, Channels: splitList(f.channels), GitHub: f.github, GitHubAPIURL: f.githubAPI, TableByPR: f.tablePR,
		I915Repo: f.i915Repo, FirmwareRepo: f.firmwareRepo, Cluster: clusterOpts})
	if err != nil {
		return err
	}
	for _, s := range set.StandIns() {
		logger.Warn("stand-in in use", "what", s)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.MetricsHandler = metrics.New(reg)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	logger.Info("worker polling", "task_queue", release.TaskQueue, "namespace", opts.Namespace, "backends", set.Describe())
	if f.dev {
		fmt.Fprintf(os.Stderr, "\nEmbedded default is up. In another terminal:\n  go run ./starter release --trigger kernel\n  go run ./starter list\n")
	}
	var ready atomic.Bool
	if healthLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "worker not polling yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(healthLn) }()
		defer srv.Close()
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	ready.Store(true)
	<-ctx.Done()
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validate checks every flag, the environment variables and the files they name, and
// returns every problem at once, each naming the flag, variable or file and the accepted
// form. It starts and writes nothing. Flags that the configuration does not use (a
// cluster flag with the rehearsal backend, as the deployment's templated arguments pass
// them all) are returned as notes to log, not as errors.
func (f flags) validate(ctx context.Context) (ignored []string, err error) {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	unused := func(flag, why string) {
		if f.given[flag] {
			ignored = append(ignored, "--"+flag+" "+why)
		}
	}
	switch f.backend {
	case "rehearsal", "cluster":
	default:
		add(&release.FieldError{Field: "--backend", Value: f.backend, Accepted: "rehearsal or cluster"})
	}
	if _, err := certify.ParsePolicy(f.policy); err != nil {
		add(&release.FieldError{Field: "--policy", Value: f.policy, Accepted: "one of container, root, scratch-nonroot, scratch-root"})
	}
	add(tclient.ValidateStateDir(tclient.StateDirField("--state", f.given["state"]), f.stateDir))
	if _, err := tclient.FromEnv(nil); err != nil {
		add(err)
	}

	// Where Temporal and the registry are.
	if f.dev {
		if tclient.Configured() {
			add(fmt.Errorf("--dev starts its own Temporal server: unset %s, or drop --dev to use it", tclient.EnvAddress))
		}
		add(tclient.ValidatePort("--temporal-port", f.frontend))
		add(tclient.ValidatePort("--ui-port", f.ui))
		add(tclient.ValidatePort("--registry-port", f.reg))
		unused("registry", "applies without --dev: the embedded default serves its own registry")
	} else {
		if !tclient.Configured() {
			add(fmt.Errorf("no Temporal service: set %s (%s) and %s, or run with --dev for the embedded default", tclient.EnvAddress, tclient.FormAddress, tclient.EnvNamespace))
		}
		if f.registry == "" {
			add(&release.FieldError{Field: "--registry", Accepted: formRegistry + " (required without --dev)"})
		} else {
			add(validateRegistry(f.registry))
			// Without the update graph the worker uses the sample releases, whose stand-in
			// Driver Toolkit images it pushes to the registry: never to a real one.
			if host := strings.Split(f.registry, ":")[0]; f.graphURL == "" && host != "127.0.0.1" && host != "localhost" && host != "[::1]" {
				add(&release.FieldError{Field: "--graph-url", Accepted: "the OpenShift update graph URL (such as " + ocp.DefaultGraphURL + "), required with a registry that is not on loopback: " +
					"without it the worker would use the sample releases and push their stand-in Driver Toolkit images to " + f.registry})
			}
		}
		for _, p := range []string{"temporal-port", "ui-port", "registry-port"} {
			unused(p, "applies to --dev only")
		}
	}
	if f.healthAddr != "" {
		add(validateListenAddr("--health-addr", f.healthAddr))
	}

	// The forge, the catalog and the kernel sources.
	for _, r := range []struct{ flag, v string }{{"--project-repo", f.projectRepo}, {"--driver-repo", f.driverRepo}, {"--i915-repo", f.i915Repo}, {"--firmware-repo", f.firmwareRepo}} {
		add(forge.ValidateRepo(r.flag, r.v))
	}
	if f.github {
		if strings.TrimSpace(os.Getenv(forge.EnvGitHubToken)) == "" {
			add(fmt.Errorf("--github needs a token: set %s to a GitHub token that can push to %s and file issues", forge.EnvGitHubToken, f.projectRepo))
		}
		if f.githubAPI != "" {
			add(validateURL("--github-api-url", f.githubAPI, "https://api.github.com/ (GitHub Enterprise: https://HOST/api/v3/)"))
		}
	} else {
		unused("github-api-url", "applies with --github")
		unused("table-pr", "applies with --github")
	}
	if f.catalogProject != "" {
		if f.catalogProject != strings.TrimSpace(f.catalogProject) || strings.ContainsAny(f.catalogProject, "/?#% \t") {
			add(&release.FieldError{Field: "--catalog-project", Value: f.catalogProject, Accepted: "the certification project ID, such as 5f0c8d5e7a1b2c3d4e5f6a7b"})
		}
		if strings.TrimSpace(os.Getenv(catalog.EnvAPIKey)) == "" {
			add(fmt.Errorf("--catalog-project needs an API key: set %s to a Red Hat Partner Connect API key", catalog.EnvAPIKey))
		}
		if f.catalogURL != "" {
			add(validateURL("--catalog-url", f.catalogURL, catalog.DefaultAPIBase))
		}
	} else {
		unused("catalog-url", "applies with --catalog-project")
	}
	if f.given["ubi-layers"] {
		add(validateUBIList(ctx, f.ubiLayers))
	}
	if f.given["preflight"] && !(certify.Preflight{Binary: f.preflight}).Available() {
		add(&release.FieldError{Field: "--preflight", Value: f.preflight, Accepted: "an installed openshift-preflight executable (a path, or a name on PATH); leave the flag out for the native checks"})
	}
	if f.graphURL != "" {
		add(validateURL("--graph-url", f.graphURL, ocp.DefaultGraphURL))
		chans := splitList(f.channels)
		if len(chans) == 0 {
			add(&release.FieldError{Field: "--channels", Value: f.channels, Accepted: "comma-separated update channels, such as stable-4.16,fast-4.17"})
		}
		for _, ch := range chans {
			if err := ocp.ValidateChannel(ch); err != nil {
				add(&release.FieldError{Field: "--channels", Value: ch, Accepted: "comma-separated update channels: stable-4.y, fast-4.y, candidate-4.y or eus-4.y, such as stable-4.16,fast-4.17"})
			}
		}
	} else {
		unused("channels", "applies with --graph-url")
	}

	// The cluster backend.
	clusterFlags := []string{"kubeconfig", "build-namespace", "git-uri", "push-secret", "test-namespace", "canary", "test-image", "test-command", "debug-namespace"}
	if f.backend != "cluster" {
		for _, fl := range clusterFlags {
			unused(fl, "applies to --backend cluster")
		}
		return ignored, errors.Join(errs...)
	}
	if f.given["kubeconfig"] && f.kubeconfig == "" {
		add(&release.FieldError{Field: "--kubeconfig", Accepted: "the path of a kubeconfig file, or leave --kubeconfig out ($KUBECONFIG, ~/.kube/config or in-cluster)"})
	} else if _, err := cluster.RESTConfig(f.kubeconfig); err != nil {
		add(kubeconfigError(f.kubeconfig, err))
	}
	if f.gitURI == "" {
		add(&release.FieldError{Field: "--git-uri", Accepted: formGitURI + " (required with --backend cluster)"})
	} else {
		add(validateGitURI(f.gitURI))
	}
	for _, ns := range []struct{ flag, v string }{{"--build-namespace", f.buildNS}, {"--test-namespace", f.testNS}, {"--debug-namespace", f.debugNS}} {
		if msgs := validation.IsDNS1123Label(ns.v); len(msgs) > 0 {
			add(&release.FieldError{Field: ns.flag, Value: ns.v, Accepted: "a Kubernetes namespace name (lower-case letters, digits and '-', at most 63), such as dgpu-release"})
		}
	}
	if f.pushSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(f.pushSecret); len(msgs) > 0 {
			add(&release.FieldError{Field: "--push-secret", Value: f.pushSecret, Accepted: "the name of a Secret in the build namespace, such as dgpu-release-registry"})
		}
	}
	if _, err := labels.Parse(f.canary); err != nil || strings.TrimSpace(f.canary) == "" {
		add(&release.FieldError{Field: "--canary", Value: f.canary, Accepted: "a Kubernetes label selector of the canary GPU nodes, such as dgpu-release/canary=true"})
	}
	if len(strings.Fields(f.testCommand)) == 0 {
		add(&release.FieldError{Field: "--test-command", Value: f.testCommand, Accepted: "the GPU test command, space separated, such as clinfo"})
	}
	if f.testImage != "" {
		if _, err := name.ParseReference(f.testImage); err != nil {
			add(&release.FieldError{Field: "--test-image", Value: f.testImage, Accepted: "an image reference, such as registry.access.redhat.com/ubi9/ubi-minimal:latest"})
		}
	}
	return ignored, errors.Join(errs...)
}

const (
	formRegistry = "a registry host with an optional port and no scheme or path, such as quay.io or registry.example.com:5000"
	formGitURI   = "the URL of the project repository that OpenShift Builds clone, such as https://github.com/intel/intel-data-center-gpu-driver-for-openshift.git"
)

// validateRegistry checks a registry host: host[:port], no scheme, no path.
func validateRegistry(host string) error {
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || strings.ContainsAny(host, "/@ \t") {
		return &release.FieldError{Field: "--registry", Value: host, Accepted: formRegistry}
	}
	return nil
}

// validateURL checks an absolute http(s) URL.
func validateURL(flag, v, example string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &release.FieldError{Field: flag, Value: v, Accepted: "an absolute http(s) URL, such as " + example}
	}
	return nil
}

// validateGitURI checks a clone URL: https://, http://, ssh:// or git@host:path.
func validateGitURI(v string) error {
	if u, err := url.Parse(v); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http" || u.Scheme == "ssh" || u.Scheme == "git") {
		return nil
	}
	if user, rest, ok := strings.Cut(v, "@"); ok && user != "" && !strings.ContainsAny(v, " \t") {
		if host, path, ok := strings.Cut(rest, ":"); ok && host != "" && path != "" {
			return nil
		}
	}
	return &release.FieldError{Field: "--git-uri", Value: v, Accepted: formGitURI}
}

// validateListenAddr checks a listen address, [host]:port.
func validateListenAddr(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return &release.FieldError{Field: flag, Value: addr, Accepted: "[host]:port, such as :8080 or 127.0.0.1:8080"}
	}
	return nil
}

// validateUBIList reads the certified UBI layer list as certification will.
func validateUBIList(ctx context.Context, path string) error {
	fe := &release.FieldError{Field: "--ubi-layers", Value: path, Accepted: "the path of a file of certified UBI layer IDs, one sha256:<64 hex> per line (# starts a comment)"}
	fi, err := os.Stat(path)
	switch {
	case path == "":
		return fe
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%w (%v)", fe, err)
	case fi.IsDir():
		return fmt.Errorf("%w (it is a folder)", fe)
	case fi.Size() == 0:
		return fmt.Errorf("%w (it is empty: every image would fail BasedOnUbi)", fe)
	}
	if _, err := (certify.ListFile{Path: path}).CertifiedLayers(ctx, nil); err != nil {
		return fmt.Errorf("%w (%v)", fe, err)
	}
	return nil
}

// kubeconfigError names the flag (or KUBECONFIG, when the flag is left out) and the file.
func kubeconfigError(path string, err error) error {
	if cause := errors.Unwrap(err); cause != nil {
		err = cause // without cluster.RESTConfig's own hint
	}
	field := "--kubeconfig"
	if path == "" {
		field, path = "KUBECONFIG", os.Getenv("KUBECONFIG")
		if path == "" {
			return fmt.Errorf("--backend cluster needs a cluster: give --kubeconfig FILE, set KUBECONFIG, create ~/.kube/config, or run in a cluster (%v)", err)
		}
	}
	fe := &release.FieldError{Field: field, Value: path, Accepted: "the path of a kubeconfig file, such as ~/.kube/config"}
	fi, serr := os.Stat(path)
	switch {
	case serr != nil:
		var pe *fs.PathError
		if errors.As(serr, &pe) {
			serr = pe.Err
		}
		return fmt.Errorf("%w (%v)", fe, serr)
	case fi.IsDir():
		return fmt.Errorf("%w (it is a folder)", fe)
	}
	return fmt.Errorf("%w (%v)", fe, err)
}
