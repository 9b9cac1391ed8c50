// Package kubetest runs a real Kubernetes control plane on loopback for the cluster
// tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which
// simulates nodes and pod lifecycles), with the CRDs that stand in for OpenShift's Build
// and ClusterVersion APIs and KMM's Module. The binaries come from hack/build-kube.sh.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Versions built by hack/build-kube.sh; keep them in step with it.
const (
	KubeVersion = "v1.36.3"
	EtcdVersion = "v3.6.8"
	KwokVersion = "v0.8.0"
)

// Environment variables.
const (
	EnvBin     = "DGPU_KUBE_BIN"        // folder of the binaries (default: the build script's cache)
	EnvRequire = "DGPU_REQUIRE_CLUSTER" // 1: fail instead of skipping when they are missing
)

//go:embed crds.yaml
var crds []byte

//go:embed kwok.yaml
var kwokConfig []byte

// BinDir is where hack/build-kube.sh puts the binaries.
func BinDir() string {
	if d := os.Getenv(EnvBin); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "dgpu-release", "kube", "kube-"+KubeVersion+"-etcd-"+EtcdVersion+"-kwok-"+KwokVersion)
}

// Cluster is a running control plane.
type Cluster struct {
	Kubeconfig string
	Config     *rest.Config
	// LogsDir holds the container logs kwok serves (one file per container name).
	LogsDir string
	dir     string
	procs   []*exec.Cmd
	logs    map[string]*bytes.Buffer
}

// Start brings a cluster up, or skips the test loudly when the binaries are missing
// (fails instead when DGPU_REQUIRE_CLUSTER=1). It is stopped when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := BinDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			msg := fmt.Sprintf("SKIPPED: no %s in %s: build the control plane with hack/build-kube.sh (about 18 minutes cold) or set %s", b, bin, EnvBin)
			if os.Getenv(EnvRequire) == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	c := &Cluster{dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}
	c.LogsDir = filepath.Join(c.dir, "container-logs")
	t.Cleanup(func() { c.stop(t) })
	if err := c.start(bin); err != nil {
		c.dump(t)
		t.Fatalf("start the control plane: %v", err)
	}
	return c
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) run(bin, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(bin, name), args...)
	buf := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	c.logs[name] = buf
	c.procs = append(c.procs, cmd)
	return nil
}

func (c *Cluster) start(bin string) error {
	if err := os.MkdirAll(c.LogsDir, 0o755); err != nil {
		return err
	}
	p, err := makePKI(c.dir)
	if err != nil {
		return err
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	etcdClient, etcdPeer, apiPort, kwokPort, cmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	peer := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.run(bin, "etcd", "--data-dir", filepath.Join(c.dir, "etcd"), "--name", "default",
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient), "--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer,
		"--log-level", "error", "--unsafe-no-fsync"); err != nil {
		return err
	}
	token := "dgpu-release-test-admin"
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	if err := c.run(bin, "kube-apiserver",
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", p.ServerCert, "--tls-private-key-file", p.ServerKey, "--client-ca-file", p.CACert,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.SAPub, "--service-account-signing-key-file", p.SAKey,
		"--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true",
		"--disable-admission-plugins", "ServiceAccount",
		"--kubelet-preferred-address-types", "InternalIP",
		"--cert-dir", filepath.Join(c.dir, "apiserver-certs")); err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := waitHTTPS(server+"/readyz", token, p.CAPEM, 60*time.Second); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	kc := newKubeconfig(server, p.CAPEM, token)
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return err
	}
	if err := c.run(bin, "kube-controller-manager", "--kubeconfig", c.Kubeconfig, "--leader-elect=false",
		"--service-account-private-key-file", p.SAKey, "--root-ca-file", p.CACert, "--use-service-account-credentials=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(cmPort),
		"--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig); err != nil {
		return err
	}
	if err := c.run(bin, "kube-scheduler", "--kubeconfig", c.Kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort),
		"--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig); err != nil {
		return err
	}
	cfg := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(cfg, bytes.ReplaceAll(kwokConfig, []byte("LOGS_DIR"), []byte(c.LogsDir)), 0o644); err != nil {
		return err
	}
	if err := c.run(bin, "kwok", "--kubeconfig", c.Kubeconfig, "--config", cfg,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--node-ip", "127.0.0.1", "--node-port", strconv.Itoa(kwokPort), "--server-address", fmt.Sprintf("127.0.0.1:%d", kwokPort),
		"--cidr", "10.244.0.1/16"); err != nil {
		return err
	}
	return c.installCRDs()
}

func waitHTTPS(url, token string, ca []byte, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (c *Cluster) installCRDs() error {
	dyn, err := dynamicFor(c.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(crds), 4096)
	var names []string
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if _, err := dyn.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("install CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	for _, n := range names {
		for {
			u, err := dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err == nil {
				conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
				est := false
				for _, cc := range conds {
					m := cc.(map[string]any)
					est = est || (m["type"] == "Established" && m["status"] == "True")
				}
				if est {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established", n)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// stop ends every process (and its children) by PID, last started first.
func (c *Cluster) stop(testing.TB) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if p.Process == nil {
			continue
		}
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = p.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

// Dump logs the tail of every process's output, for a failing test to show.
func (c *Cluster) Dump(t testing.TB) { c.dump(t) }

func (c *Cluster) dump(t testing.TB) {
	for name, b := range c.logs {
		s := b.String()
		if len(s) > 4000 {
			s = "..." + s[len(s)-4000:]
		}
		t.Logf("--- %s log ---\n%s", name, strings.TrimSpace(s))
	}
}
