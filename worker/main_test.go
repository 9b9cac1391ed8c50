package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	if os.Getenv("WORKER_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The worker starts from its flags and environment alone, as in a container: an empty
// home, no state folder prepared, only PATH set; it reports ready, serves metrics, and
// stops cleanly on SIGTERM.
func TestWorkerStartsFromFlagsAndEnvironment(t *testing.T) {
	home := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "--dev", "--health-addr", addr, "--temporal-port", "0", "--ui-port", "0", "--registry-port", "0",
		"--state", filepath.Join(home, "state"), "--log-level", "warn")
	cmd.Env = []string{"WORKER_TEST_AS_MAIN=1", "HOME=" + home, "PATH=" + os.Getenv("PATH")}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK }, 90*time.Second, 100*time.Millisecond, "ready: %s", logs.String())
	code, _ := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, "go_goroutines") && strings.Contains(body, "temporal_")
	}, 30*time.Second, 200*time.Millisecond, "the SDK's metrics are served")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err, "a clean stop: %s", logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal(fmt.Sprintf("the worker did not stop on SIGTERM: %s", logs.String()))
	}
}
