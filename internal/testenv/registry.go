// Package testenv gives tests the third-party services the project is tested against.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Environment variables that .ci/run sets.
const (
	EnvThirdPartyRegistry        = "DGPU_THIRD_PARTY_REGISTRY"         // host:port of a running registry
	EnvRequireThirdPartyRegistry = "DGPU_REQUIRE_THIRD_PARTY_REGISTRY" // 1: fail instead of skipping
)

// ThirdPartyRegistry returns host:port of Debian's docker-registry (the CNCF
// distribution server): the one named by DGPU_THIRD_PARTY_REGISTRY, or one started here
// from the docker-registry binary. Without either the test is skipped, loudly, unless
// DGPU_REQUIRE_THIRD_PARTY_REGISTRY=1 makes it fail.
func ThirdPartyRegistry(t *testing.T) string {
	t.Helper()
	if addr := os.Getenv(EnvThirdPartyRegistry); addr != "" {
		waitHTTP(t, "http://"+addr+"/v2/")
		return addr
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		msg := "SKIPPED: no third-party registry: install Debian's docker-registry package or set " + EnvThirdPartyRegistry
		if os.Getenv(EnvRequireThirdPartyRegistry) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", logs.String())
		}
	})
	waitHTTP(t, "http://"+addr+"/v2/")
	return addr
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s does not answer: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
