package certify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"dgpu-release/internal/release"
)

// Preflight runs an installed openshift-preflight binary instead of the native checks,
// and reads its results document into the same record.
type Preflight struct {
	// Binary is the preflight executable (looked up on the PATH when it has no slash).
	Binary string
	// DockerConfig is the registry credentials file preflight reads (optional).
	DockerConfig string
	// Policy is recorded with the results (preflight chooses its policy itself).
	Policy Policy
}

// Available reports whether the binary can be run.
func (p Preflight) Available() bool {
	if p.Binary == "" {
		return false
	}
	_, err := exec.LookPath(p.Binary)
	return err == nil
}

// preflightResults is preflight's results.json.
type preflightResults struct {
	Image       string `json:"image"`
	Passed      bool   `json:"passed"`
	TestLibrary struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Commit  string `json:"commit"`
	} `json:"test_library"`
	Results struct {
		Passed []preflightCheck `json:"passed"`
		Failed []preflightCheck `json:"failed"`
		Errors []preflightCheck `json:"errors"`
	} `json:"results"`
}

type preflightCheck struct {
	Name        string `json:"name"`
	ElapsedTime int64  `json:"elapsed_time"`
	Description string `json:"description"`
	Help        string `json:"help"`
	Suggestion  string `json:"suggestion"`
}

// Run checks the image (a reference by digest) with preflight.
func (p Preflight) Run(ctx context.Context, ref string) (release.CertificationResult, error) {
	dir, err := os.MkdirTemp("", "preflight-")
	if err != nil {
		return release.CertificationResult{}, err
	}
	defer os.RemoveAll(dir)
	args := []string{"check", "container", ref, "--artifacts", filepath.Join(dir, "artifacts")}
	if p.DockerConfig != "" {
		args = append(args, "--docker-config", p.DockerConfig)
	}
	cmd := exec.CommandContext(ctx, p.Binary, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	// preflight exits non-zero when checks fail but still writes its results.
	b, err := os.ReadFile(filepath.Join(dir, "artifacts", "results.json"))
	if err != nil {
		if runErr != nil {
			return release.CertificationResult{}, fmt.Errorf("preflight %s: %v: %s", ref, runErr, tail(out.String()))
		}
		return release.CertificationResult{}, fmt.Errorf("preflight wrote no results.json: %w", err)
	}
	return ParsePreflightResults(b, p.Policy)
}

// ParsePreflightResults converts preflight's results document into the record.
func ParsePreflightResults(b []byte, policy Policy) (release.CertificationResult, error) {
	var r preflightResults
	if err := json.Unmarshal(b, &r); err != nil {
		return release.CertificationResult{}, fmt.Errorf("preflight results.json: %w", err)
	}
	conv := func(in []preflightCheck) []release.CheckOutcome {
		out := []release.CheckOutcome{}
		for _, c := range in {
			out = append(out, release.CheckOutcome{Name: c.Name, ElapsedTime: c.ElapsedTime, Description: c.Description, Help: c.Help, Reason: c.Suggestion})
		}
		return out
	}
	return release.CertificationResult{
		Image: r.Image, Passed: r.Passed, Policy: string(policy),
		TestLibrary: release.TestLibrary{Name: r.TestLibrary.Name, Version: r.TestLibrary.Version},
		Results:     release.CheckResults{Passed: conv(r.Results.Passed), Failed: conv(r.Results.Failed), Errors: conv(r.Results.Errors)},
	}, nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
