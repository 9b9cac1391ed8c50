package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// EnvThirdPartyRegistry names a running registry to use instead of starting one (as .ci/run sets).
const EnvThirdPartyRegistry = "DGPU_THIRD_PARTY_REGISTRY"

// regInstance is a docker-registry process this run started.
type regInstance struct {
	Host string // 127.0.0.1:port
	Dir  string
	cmd  *exec.Cmd
	log  *os.File
	once sync.Once
}

// Stop ends the registry process (SIGTERM, then SIGKILL) and, with removeData, deletes its folder.
func (r *regInstance) Stop(removeData bool) {
	r.once.Do(func() {
		if r.cmd != nil && r.cmd.Process != nil {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			_, _ = waitExit(r.cmd, 10*time.Second)
		}
		if r.log != nil {
			r.log.Close()
		}
	})
	if removeData {
		os.RemoveAll(r.Dir)
	}
}

// ThirdPartyRegistry returns host:port of Debian's docker-registry (the CNCF distribution
// server): $DGPU_THIRD_PARTY_REGISTRY if set, else one started for this run from
// /usr/bin/docker-registry with filesystem storage in the temp folder, as .ci/run does.
func (e *env) ThirdPartyRegistry(ctx context.Context) (string, error) {
	e.tpOnce.Do(func() {
		if addr := os.Getenv(EnvThirdPartyRegistry); addr != "" {
			if err := waitHTTP(ctx, "http://"+addr+"/v2/", 20*time.Second); err != nil {
				e.tpErr = fmt.Errorf("%s=%s: %w", EnvThirdPartyRegistry, addr, err)
				return
			}
			e.tpHost, e.tpDesc = addr, "the registry at $"+EnvThirdPartyRegistry+" ("+addr+")"
			return
		}
		r, err := e.StartRegistry(ctx, "registry-main")
		if err != nil {
			e.tpErr = err
			return
		}
		e.tpHost, e.tpDesc = r.Host, "Debian's docker-registry started for this run, filesystem storage in the temp folder"
	})
	return e.tpHost, e.tpErr
}

// registryVersion is `docker-registry --version`, or why not.
func registryVersion(ctx context.Context) string {
	b, err := exec.CommandContext(ctx, "docker-registry", "--version").Output()
	if err != nil {
		return "docker-registry (version unknown: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// StartRegistry starts a new docker-registry on a free loopback port, with its data in
// the temp folder under name. It is stopped at the end of the run at the latest.
func (e *env) StartRegistry(ctx context.Context, name string) (*regInstance, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, errors.New("docker-registry is not installed: apt-get install docker-registry (Debian's package of the CNCF distribution server), or set " + EnvThirdPartyRegistry + "=host:port to a running registry")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := e.Path(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", dir, addr)
	cfg := dir + "/config.yml"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(dir + "/log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	r := &regInstance{Host: addr, Dir: dir, cmd: cmd, log: logf}
	e.OnClose(func() { r.Stop(false) })
	if err := waitHTTP(ctx, "http://"+addr+"/v2/", 20*time.Second); err != nil {
		r.Stop(false)
		b, _ := os.ReadFile(dir + "/log")
		return nil, fmt.Errorf("docker-registry on %s: %w\n%s", addr, err, tail(string(b), 20))
	}
	return r, nil
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %s: %w", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// countingProxy is a reverse proxy in front of a registry that counts requests by kind
// and the bytes of request and response bodies.
type countingProxy struct {
	Host string // 127.0.0.1:port of the proxy
	srv  *http.Server

	mu     sync.Mutex
	counts map[string]int
	sent   atomic.Int64 // request body bytes (client to registry)
	recv   atomic.Int64 // response body bytes (registry to client)
}

// traffic is what a proxy saw between two snapshots.
type traffic struct {
	Counts map[string]int // "kind → status"
	Sent   int64          // request body bytes
	Recv   int64          // response body bytes
}

// uploads is the number of blob upload requests (POST, PATCH, PUT on /blobs/uploads/),
// honoured mounts excluded: a mount request the registry answers 202 instead of 201
// starts an upload and counts as one.
func (t traffic) uploads() int {
	n := 0
	for k, c := range t.Counts {
		if strings.HasPrefix(k, "blob upload") || (strings.HasPrefix(k, "blob mount") && !strings.HasSuffix(k, " 201")) {
			n += c
		}
	}
	return n
}

// mounts is the number of cross-repository mount requests the registry honoured (201).
func (t traffic) mounts() (asked, mounted int) {
	for k, c := range t.Counts {
		if strings.HasPrefix(k, "blob mount") {
			asked += c
			if strings.HasSuffix(k, " 201") {
				mounted += c
			}
		}
	}
	return asked, mounted
}

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{Host: ln.Addr().String(), counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns: 64, MaxIdleConnsPerHost: 64, DisableCompression: true}
	rp.ErrorLog = nil
	p.srv = &http.Server{ReadHeaderTimeout: 30 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := classify(r)
		if r.Body != nil {
			r.Body = &countReader{r: r.Body, n: &p.sent}
		}
		cw := &countWriter{ResponseWriter: w, n: &p.recv, status: http.StatusOK}
		rp.ServeHTTP(cw, r)
		p.mu.Lock()
		p.counts[fmt.Sprintf("%s %d", kind, cw.status)]++
		p.mu.Unlock()
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Take returns what the proxy saw since the last Take and starts counting afresh.
func (p *countingProxy) Take() traffic {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := traffic{Counts: p.counts, Sent: p.sent.Swap(0), Recv: p.recv.Swap(0)}
	p.counts = map[string]int{}
	return t
}

func (p *countingProxy) Close() { _ = p.srv.Close() }

// classify names a registry API request.
func classify(r *http.Request) string {
	p := r.URL.Path
	m := r.Method
	switch {
	case p == "/v2/" || p == "/v2":
		return m + " /v2/ (ping)"
	case strings.Contains(p, "/blobs/uploads"):
		q := r.URL.Query()
		switch {
		case m == http.MethodPost && q.Has("mount"):
			return "blob mount POST ?mount=&from=" + q.Get("from")
		case m == http.MethodPost && q.Has("digest"):
			return "blob upload POST (monolithic)"
		case m == http.MethodPost:
			return "blob upload POST (start)"
		case m == http.MethodPatch:
			return "blob upload PATCH (data)"
		case m == http.MethodPut && r.ContentLength > 0:
			return "blob upload PUT (data + finish)"
		case m == http.MethodPut:
			return "blob upload PUT (finish)"
		default:
			return m + " blob upload status"
		}
	case strings.Contains(p, "/blobs/"):
		return m + " blob"
	case strings.Contains(p, "/manifests/"):
		return m + " manifest"
	case strings.HasSuffix(p, "/tags/list"):
		return m + " tags/list"
	default:
		return m + " other"
	}
}

type countReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countReader) Close() error { return c.r.Close() }

type countWriter struct {
	http.ResponseWriter
	n      *atomic.Int64
	status int
	wrote  bool
}

func (c *countWriter) WriteHeader(code int) {
	if !c.wrote {
		c.status, c.wrote = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countWriter) Write(b []byte) (int, error) {
	c.wrote = true
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// trafficTable renders request counts of several runs side by side.
func trafficTable(cols []string, ts []traffic) string {
	keys := map[string]bool{}
	for _, t := range ts {
		for k := range t.Counts {
			keys[k] = true
		}
	}
	var rows []string
	for k := range keys {
		rows = append(rows, k)
	}
	sort.Strings(rows)
	var b strings.Builder
	b.WriteString("| request (kind, status) |")
	for _, c := range cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, k := range rows {
		b.WriteString("| " + strings.ReplaceAll(k, "|", "\\|") + " |")
		for _, t := range ts {
			fmt.Fprintf(&b, " %d |", t.Counts[k])
		}
		b.WriteString("\n")
	}
	b.WriteString("| **blob upload requests** (POST/PATCH/PUT on `/blobs/uploads/`, except mounts answered 201) |")
	for _, t := range ts {
		fmt.Fprintf(&b, " **%d** |", t.uploads())
	}
	b.WriteString("\n| **mounts honoured (201) / asked** |")
	for _, t := range ts {
		a, m := t.mounts()
		fmt.Fprintf(&b, " %d / %d |", m, a)
	}
	b.WriteString("\n| **request body bytes** (sent to the registry) |")
	for _, t := range ts {
		fmt.Fprintf(&b, " %s |", fmtMiB(t.Sent))
	}
	b.WriteString("\n| **response body bytes** (read from the registry) |")
	for _, t := range ts {
		fmt.Fprintf(&b, " %s |", fmtMiB(t.Recv))
	}
	b.WriteString("\n")
	return b.String()
}
