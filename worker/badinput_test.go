package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every flag, environment variable and file the worker reads: a bad value is refused
// before anything starts, with an error that names it and the accepted form, and the state
// folder gains nothing.
func TestWorkerRefusesBadInput(t *testing.T) {
	tmp := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(tmp, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	dir := filepath.Join(tmp, "a-folder")
	require.NoError(t, os.Mkdir(dir, 0o755))
	aFile := file("a-file", "not a folder\n")
	badUBI := file("ubi-bad.txt", "# certified UBI layers\nsha256:abc\n")
	emptyUBI := file("ubi-empty.txt", "")
	badKube := file("kubeconfig-bad", "garbage: [")
	pem := file("not-pem", "hello\n")
	dev := []string{"--dev", "--temporal-port", "0", "--ui-port", "0", "--registry-port", "0"}
	cluster := append([]string{"--backend", "cluster", "--git-uri", "https://example.com/project.git", "--kubeconfig", badKube}, dev...)
	remote := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"}

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // each must appear in the error
	}{
		{"backend", append([]string{"--backend", "k8s"}, dev...), nil, []string{`--backend "k8s"`, "rehearsal or cluster"}},
		{"policy", append([]string{"--policy", "strict"}, dev...), nil, []string{`--policy "strict"`, "scratch-nonroot"}},
		{"log level", append([]string{"--log-level", "loud"}, dev...), nil, []string{`--log-level "loud"`, "debug, info, warn, error"}},
		{"every bad flag at once", append([]string{"--backend", "k8s", "--policy", "strict", "--project-repo", "x"}, dev...), nil, []string{"--backend", "--policy", "--project-repo"}},
		{"state empty", append([]string{"--state", ""}, dev...), nil, []string{"--state is required", "folder"}},
		{"state is a file", append([]string{"--state", aFile}, dev...), nil, []string{"--state", "this is a file"}},
		{"DGPU_STATE_DIR is a file", dev, map[string]string{"DGPU_STATE_DIR": aFile}, []string{"DGPU_STATE_DIR", "this is a file"}},
		{"port negative", []string{"--dev", "--temporal-port", "-1", "--ui-port", "0", "--registry-port", "0"}, nil, []string{`--temporal-port "-1"`, "1 to 65535"}},
		{"port too big", []string{"--dev", "--temporal-port", "0", "--ui-port", "70000", "--registry-port", "0"}, nil, []string{`--ui-port "70000"`}},
		{"dev with TEMPORAL_ADDRESS", dev, remote, []string{"--dev", "TEMPORAL_ADDRESS"}},
		{"no Temporal", []string{"--registry", "quay.io"}, nil, []string{"TEMPORAL_ADDRESS", "--dev"}},
		{"no registry", nil, remote, []string{"--registry is required", "quay.io"}},
		{"real registry without the update graph", []string{"--registry", "quay.io"}, remote, []string{"--graph-url", "stand-in Driver Toolkit images to quay.io"}},
		{"registry with scheme", []string{"--registry", "https://quay.io/x"}, remote, []string{`--registry "https://quay.io/x"`, "no scheme or path"}},
		{"address without port", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "localhost"}, []string{`TEMPORAL_ADDRESS "localhost"`, "host:port"}},
		{"address with scheme", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "http://localhost:7233"}, []string{"TEMPORAL_ADDRESS", "no scheme"}},
		{"namespace", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_NAMESPACE": "my ns"}, []string{`TEMPORAL_NAMESPACE "my ns"`}},
		{"TLS cert without key", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CERT": pem}, []string{"TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"}},
		{"TLS files missing and a folder", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CERT": dir, "TEMPORAL_TLS_KEY": "/nonexistent/key.pem"}, []string{"TEMPORAL_TLS_CERT", "is a directory", "TEMPORAL_TLS_KEY", "no such file"}},
		{"TLS cert not PEM", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CERT": pem, "TEMPORAL_TLS_KEY": pem}, []string{"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "PEM"}},
		{"TLS CA not PEM", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CA": pem}, []string{"TEMPORAL_TLS_CA", "PEM CA certificates"}},
		{"API key with a newline", []string{"--registry", "quay.io"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_API_KEY": "secret-key\n"}, []string{"TEMPORAL_API_KEY", "no trailing newline"}},
		{"health address", append([]string{"--health-addr", "8080"}, dev...), nil, []string{`--health-addr "8080"`, ":8080"}},
		{"repo", append([]string{"--driver-repo", "a/b/c"}, dev...), nil, []string{`--driver-repo "a/b/c"`, "owner/name"}},
		{"ubi list missing", append([]string{"--ubi-layers", "/nonexistent/ubi.txt"}, dev...), nil, []string{"--ubi-layers", "no such file", "sha256:<64 hex>"}},
		{"ubi list is a folder", append([]string{"--ubi-layers", dir}, dev...), nil, []string{"--ubi-layers", "folder"}},
		{"ubi list bad line", append([]string{"--ubi-layers", badUBI}, dev...), nil, []string{"--ubi-layers", "line 2", "sha256:abc"}},
		{"ubi list empty", append([]string{"--ubi-layers", emptyUBI}, dev...), nil, []string{"--ubi-layers", "empty"}},
		{"preflight missing", append([]string{"--preflight", "/nonexistent/preflight"}, dev...), nil, []string{`--preflight "/nonexistent/preflight"`, "openshift-preflight"}},
		{"graph URL", append([]string{"--graph-url", "api.openshift.com/graph"}, dev...), nil, []string{"--graph-url", "absolute http(s) URL"}},
		{"channel", append([]string{"--graph-url", "https://example.com/graph", "--channels", "stable-4.16,weird"}, dev...), nil, []string{`--channels "weird"`, "stable-4.y"}},
		{"no channel", append([]string{"--graph-url", "https://example.com/graph", "--channels", " , "}, dev...), nil, []string{"--channels", "stable-4.16,fast-4.17"}},
		{"github without token", append([]string{"--github"}, dev...), map[string]string{"GITHUB_TOKEN": ""}, []string{"--github", "GITHUB_TOKEN"}},
		{"github API URL", append([]string{"--github", "--github-api-url", "ghe.example.com"}, dev...), map[string]string{"GITHUB_TOKEN": "t"}, []string{"--github-api-url", "https://HOST/api/v3/"}},
		{"catalog without key", append([]string{"--catalog-project", "abc"}, dev...), map[string]string{"DGPU_CATALOG_API_KEY": " "}, []string{"--catalog-project", "DGPU_CATALOG_API_KEY"}},
		{"catalog project and URL", append([]string{"--catalog-project", "a/b", "--catalog-url", "::"}, dev...), map[string]string{"DGPU_CATALOG_API_KEY": "k"}, []string{`--catalog-project "a/b"`, `--catalog-url "::"`}},
		{"kubeconfig missing", append([]string{"--backend", "cluster", "--git-uri", "https://example.com/p.git", "--kubeconfig", "/nonexistent/kubeconfig"}, dev...), nil, []string{`--kubeconfig "/nonexistent/kubeconfig"`, "no such file"}},
		{"kubeconfig is a folder", append([]string{"--backend", "cluster", "--git-uri", "https://example.com/p.git", "--kubeconfig", dir}, dev...), nil, []string{"--kubeconfig", "folder"}},
		{"kubeconfig bad content", cluster, nil, []string{"--kubeconfig", "kubeconfig-bad", "yaml"}},
		{"KUBECONFIG bad content", append([]string{"--backend", "cluster", "--git-uri", "https://example.com/p.git"}, dev...), map[string]string{"KUBECONFIG": badKube}, []string{`KUBECONFIG "` + badKube}},
		{"cluster flags", append(append([]string{}, cluster...), "--git-uri", "not a uri", "--canary", "a b=", "--test-command", " ", "--build-namespace", "Bad_NS",
			"--test-image", "UPPER::x", "--push-secret", "a b"), nil, []string{"--git-uri", "--canary", "--test-command", "--build-namespace", "--test-image", "--push-secret"}},
		{"cluster without git URI", []string{"--backend", "cluster", "--kubeconfig", badKube, "--git-uri", "", "--dev"}, nil, []string{"--git-uri is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_API_KEY", "KUBECONFIG", "GITHUB_TOKEN", "DGPU_CATALOG_API_KEY"} {
				t.Setenv(k, "")
			}
			state := filepath.Join(t.TempDir(), "state")
			t.Setenv("DGPU_STATE_DIR", state)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--state") && tc.env["DGPU_STATE_DIR"] == "" {
				args = append([]string{"--state", state}, args...)
			}
			var out bytes.Buffer
			f, err := parseFlags(args, &out)
			require.NoError(t, err, out.String())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = run(ctx, f)
			require.Error(t, err, "the worker must refuse %v", args)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NoDirExists(t, state, "nothing is written before the input is checked")
		})
	}
}

// The command line itself: a stray argument (a flag's value after a space where the flag
// is a boolean, say) and a value of the wrong type are refused, naming what was wrong.
func TestWorkerRefusesBadCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dev", "extra"}, `unexpected argument "extra"`},
		{[]string{"--github", "false"}, `unexpected argument "false"`},
		{[]string{"--temporal-port", "abc"}, "-temporal-port"},
		{[]string{"--dev=maybe"}, "-dev"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		var out bytes.Buffer
		_, err := parseFlags(tc.args, &out)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, fmt.Sprint(err, out.String()), tc.want)
	}
	f, err := parseFlags([]string{"--dev", "--state", "/x"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.True(t, f.given["state"] && f.given["dev"] && !f.given["registry"], "the flags given are known: %v", f.given)
}

// A flag the configuration does not use is not an error (the deployment passes the
// cluster flags whatever the backend), but it is named.
func TestWorkerNamesIgnoredFlags(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	f, err := parseFlags([]string{"--dev", "--state", t.TempDir(), "--canary", "x=y", "--table-pr", "--channels", "fast-4.17"}, &bytes.Buffer{})
	require.NoError(t, err)
	ignored, err := f.validate(context.Background())
	require.NoError(t, err)
	assert.Len(t, ignored, 3)
	assert.Contains(t, strings.Join(ignored, "\n"), "--canary applies to --backend cluster")
	assert.Contains(t, strings.Join(ignored, "\n"), "--table-pr applies with --github")
	assert.Contains(t, strings.Join(ignored, "\n"), "--channels applies with --graph-url")
}
