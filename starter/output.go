package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"dgpu-release/internal/release"
)

// follow prints a release's progress until it ends, and returns its record.
func (a *app) follow(ctx context.Context, c client.Client, run client.WorkflowRun) (release.Record, error) {
	type result struct {
		rec release.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		var rec release.Record
		err := run.Get(ctx, &rec)
		done <- result{rec, err}
	}()
	p := &progress{out: a.out, id: run.GetID()}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				var appErr *temporal.ApplicationError
				if errors.As(r.err, &appErr) {
					return release.Record{}, fmt.Errorf("release %s failed: %s", run.GetID(), appErr.Message())
				}
				return release.Record{}, fmt.Errorf("release %s: %w", run.GetID(), r.err)
			}
			p.update(r.rec.Status)
			return r.rec, nil
		case <-tick.C:
			v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), release.QueryStatus)
			if err != nil {
				continue // no worker has answered yet, or the run just ended
			}
			var st release.Status
			if v.Get(&st) == nil {
				p.update(st)
			}
		case <-ctx.Done():
			return release.Record{}, ctx.Err()
		}
	}
}

// progress prints what changed since the last status.
type progress struct {
	out      io.Writer
	id       string
	started  int // attempts whose start was printed
	ended    int // attempts whose end was printed
	evidence int
	waiting  string
	standIns map[string]bool
	actions  int
	unknown  string // unknown signal names last printed
}

func (p *progress) update(st release.Status) {
	if p.standIns == nil {
		p.standIns = map[string]bool{}
	}
	for i := p.ended; i < len(st.Attempts); i++ {
		a := st.Attempts[i]
		if i >= p.started {
			if a.Result != release.ResultSkipped {
				fmt.Fprintf(p.out, "▶ %s (round %d)\n", a.Step, a.Round)
			}
			p.started = i + 1
		}
		if a.Result == release.ResultRunning {
			break
		}
		switch a.Result {
		case release.ResultOK:
			fmt.Fprintf(p.out, "✔ %s in %s\n", a.Step, a.EndedAt.Sub(a.StartedAt).Round(time.Millisecond))
		case release.ResultSkipped:
			fmt.Fprintf(p.out, "– %s skipped: %s\n", a.Step, a.Error)
		default:
			fmt.Fprintf(p.out, "✖ %s failed after %s\n", a.Step, a.EndedAt.Sub(a.StartedAt).Round(time.Millisecond))
		}
		// The evidence of a step follows its attempt.
		for p.evidence < len(st.Evidence) && st.Evidence[p.evidence].Step == a.Step {
			p.printEvidence(st.Evidence[p.evidence])
		}
		p.ended = i + 1
	}
	if p.ended == len(st.Attempts) {
		for p.evidence < len(st.Evidence) {
			p.printEvidence(st.Evidence[p.evidence])
		}
	}
	for ; p.actions < len(st.Actions); p.actions++ {
		h := st.Actions[p.actions]
		fmt.Fprintf(p.out, "☞ %s by %s %s\n", h.Action, orDash(h.By), strings.TrimSpace(h.Ref+" "+h.Reason))
	}
	if u := strings.Join(st.UnknownSignals, ", "); u != p.unknown {
		p.unknown = u
		if u != "" {
			fmt.Fprintf(p.out, "⚠ ignored signals %s: not a known action (accepted: %s)\n", u, strings.Join(release.Actions, ", "))
		}
	}
	if st.Waiting != p.waiting {
		p.waiting = st.Waiting
		if st.Waiting != "" {
			fmt.Fprintf(p.out, "⏸ waiting for %s\n", st.Waiting)
			for _, u := range st.Issues {
				fmt.Fprintf(p.out, "  issue:  %s\n", u)
			}
			if st.DebugAttach != "" {
				fmt.Fprintf(p.out, "  debug:  %s\n", st.DebugAttach)
			}
			if st.Step == release.StepWaiting {
				fmt.Fprintf(p.out, "  steer it from another terminal:\n    %s signal %s retry [--ref REV]\n    %s signal %s escalate --reason TEXT\n    %s signal %s abort --reason TEXT\n",
					self(), p.id, self(), p.id, self(), p.id)
			} else {
				fmt.Fprintf(p.out, "  approve it from another terminal:\n    %s signal %s approve\n", self(), p.id)
			}
		}
	}
}

func (p *progress) printEvidence(e release.Evidence) {
	p.evidence++
	fmt.Fprintf(p.out, "  · %s\n", e.Summary)
	if e.LogTail != "" && e.Step != "" {
		for _, l := range strings.Split(strings.TrimRight(e.LogTail, "\n"), "\n") {
			fmt.Fprintf(p.out, "    | %s\n", l)
		}
	}
	if e.StandIn != "" && !p.standIns[e.StandIn] {
		p.standIns[e.StandIn] = true
		fmt.Fprintf(p.out, "    (%s)\n", e.StandIn)
	}
}

// self is how the user ran this program, for the commands we suggest.
func self() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./starter"
	}
	return os.Args[0]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printRecord(w io.Writer, rec release.Record) {
	fmt.Fprintf(w, "\n%s: %s\n", rec.WorkflowID, strings.ToUpper(string(rec.Outcome)))
	r := rec.Resolved
	if r.Kernel != "" {
		fmt.Fprintf(w, "  Kernel         %s (RHEL %s, OpenShift %s)\n", r.Kernel, r.RHELVersion, r.OpenShiftVersion)
	}
	fmt.Fprintf(w, "  Driver         %s (i915 %s, firmware %s)\n", rec.Request.Driver.DriverVersion, rec.Request.Driver.I915Tag, rec.Request.Driver.FirmwareTag)
	if r.BuildKey != "" {
		fmt.Fprintf(w, "  Build key      %s (Dockerfile %s at %.12s)\n", r.BuildKey, r.DockerfileRef, r.DockerfileCommit)
	}
	if rec.Published != nil {
		fmt.Fprintf(w, "  Image          %s:%s\n  Digest         %s\n", rec.Published.Repository, rec.Published.Tag, rec.Published.Digest)
	}
	if c := rec.Certification; c != nil {
		verdict := "PASSED"
		if !c.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  Certification  %s, policy %s: %d passed, %d failed, %d errors\n", verdict, c.Policy, len(c.Results.Passed), len(c.Results.Failed), len(c.Results.Errors))
		for _, o := range c.Results.Passed {
			fmt.Fprintf(w, "                   pass  %-26s %s\n", o.Name, o.Reason)
		}
		for _, o := range append(c.Results.Failed, c.Results.Errors...) {
			fmt.Fprintf(w, "                   FAIL  %-26s %s\n", o.Name, o.Reason)
		}
		for _, o := range c.NotRun {
			fmt.Fprintf(w, "                   --    %-26s %s\n", o.Name, o.Reason)
		}
	}
	if rec.TableCommit != "" {
		fmt.Fprintf(w, "  Release table  commit %s\n", rec.TableCommit)
	}
	if rec.CatalogID != "" {
		fmt.Fprintf(w, "  Catalog        %s\n", rec.CatalogID)
	}
	for _, u := range rec.Issues {
		fmt.Fprintf(w, "  Issue          %s\n", u)
	}
	fmt.Fprintf(w, "  Rounds         %d, %d step attempts\n", rec.Round, len(rec.Attempts))
}
