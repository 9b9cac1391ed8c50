package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"dgpu-release/activities"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

func init() {
	register(section{Name: "orchestration", Order: 10, Title: "Orchestration overhead", Run: benchOrchestration})
}

// orchestrationNs are the release counts of the orchestration benchmark.
var orchestrationNs = []int{10, 100, 500}

// zeroCost are activities with the names and result shapes of the release's steps that do
// no work, so that what is measured is Temporal's and the workflow's own cost.
type zeroCost struct{}

const benchDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func (zeroCost) Resolve(_ context.Context, in activities.ResolveInput) (activities.ResolveOutput, error) {
	r := in.Request
	return activities.ResolveOutput{Resolved: release.Resolved{Kernel: r.Kernel, RHELVersion: "9.4", OpenShiftVersion: r.OpenShiftVersion,
		DTKImage: "bench/dtk@" + benchDigest, DockerfileRef: r.DockerfileRef, DockerfileCommit: "0000000",
		BuildKey: release.BuildKey(strings.Repeat("a", 64)), ImageTag: release.ImageTag(r.Driver.DriverVersion, r.Kernel)},
		Evidence: release.Evidence{Step: release.StepResolve, Summary: "zero-cost"}}, nil
}

func (zeroCost) BuildImage(_ context.Context, in activities.BuildInput) (release.BuildOutput, error) {
	return release.BuildOutput{Image: release.Image{Repository: "bench/staging", Tag: in.Resolved.ImageTag, Digest: benchDigest},
		Evidence: release.Evidence{Step: release.StepBuild, Summary: "zero-cost"}}, nil
}

func (zeroCost) TestImage(context.Context, activities.TestInput) (release.TestOutput, error) {
	return release.TestOutput{Node: "bench", Evidence: release.Evidence{Step: release.StepGPUTest, Summary: "zero-cost"}}, nil
}

func (zeroCost) CertifyImage(context.Context, activities.CertifyInput) (release.CertificationResult, error) {
	return release.CertificationResult{Passed: true, Policy: "root"}, nil
}

func (zeroCost) PublishImage(_ context.Context, in activities.PublishInput) (activities.PublishOutput, error) {
	return activities.PublishOutput{Image: release.Image{Repository: "bench/release", Tag: in.Resolved.ImageTag, Digest: benchDigest},
		Evidence: release.Evidence{Step: release.StepPublish, Summary: "zero-cost"}}, nil
}

func (zeroCost) UpdateTable(context.Context, activities.TableInput) (forge.TableUpdate, error) {
	return forge.TableUpdate{Commit: "0000000", Changed: true}, nil
}

// releaseSteps is the number of activities a successful release without a gate runs.
const releaseSteps = 6

func (z zeroCost) register(w worker.Registry) {
	for name, fn := range map[string]any{"Resolve": z.Resolve, "BuildImage": z.BuildImage, "TestImage": z.TestImage,
		"CertifyImage": z.CertifyImage, "PublishImage": z.PublishImage, "UpdateTable": z.UpdateTable} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// direct calls the same steps in a loop, without Temporal: the floor.
func (z zeroCost) direct(ctx context.Context, req release.Request) error {
	res, err := z.Resolve(ctx, activities.ResolveInput{Request: req})
	if err != nil {
		return err
	}
	b, _ := z.BuildImage(ctx, activities.BuildInput{Resolved: res.Resolved})
	_, _ = z.TestImage(ctx, activities.TestInput{Image: b.Image})
	c, _ := z.CertifyImage(ctx, activities.CertifyInput{Image: b.Image})
	_, _ = z.PublishImage(ctx, activities.PublishInput{Staged: b.Image, Resolved: res.Resolved, Certification: &c})
	_, err = z.UpdateTable(ctx, activities.TableInput{})
	return err
}

func benchRequest(i int) release.Request {
	return release.Request{Trigger: release.TriggerManual, OpenShiftVersion: "4.16.3",
		Kernel:        fmt.Sprintf("5.14.0-%d.1.el9_4.x86_64", 1000+i),
		Driver:        release.DriverSet{I915Tag: "I915_24WW30.4_803.75_23.10.54_231129.76", FirmwareTag: "24WW20.5_881", DriverVersion: "1.2.0"},
		DockerfileRef: "main"}
}

type orchRun struct {
	n         int
	wall      time.Duration
	latencies []time.Duration
}

func benchOrchestration(ctx context.Context, e *env) (string, error) {
	state := filepath.Join(e.Dir, "orchestration-state")
	fmt.Fprintln(e.Log, "orchestration: starting the embedded stack in", state)
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true, FrontendPort: 0, RegistryPort: 0})
	if err != nil {
		return "", err
	}
	defer stack.Stop()
	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace, Logger: quietLogger()})
	if err != nil {
		return "", err
	}
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.Release)
	zeroCost{}.register(w)
	if err := w.Start(); err != nil {
		return "", err
	}
	defer w.Stop()

	var runs []orchRun
	next := 0
	for _, n := range orchestrationNs {
		fmt.Fprintf(e.Log, "orchestration: %d releases at once\n", n)
		r, err := runReleases(ctx, c, next, n)
		if err != nil {
			return "", err
		}
		next += n
		runs = append(runs, r)
		fmt.Fprintf(e.Log, "orchestration: %d releases in %s\n", n, r.wall.Round(time.Millisecond))
	}
	// One at a time: the latency a single release pays, with nothing else running.
	fmt.Fprintln(e.Log, "orchestration: 20 releases one at a time")
	var serial []time.Duration
	for i := 0; i < 20; i++ {
		r, err := runReleases(ctx, c, next, 1)
		if err != nil {
			return "", err
		}
		next++
		serial = append(serial, r.wall)
	}

	// The floor: the same steps called directly.
	floor := map[int]time.Duration{}
	for _, n := range orchestrationNs {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := (zeroCost{}).direct(ctx, benchRequest(i)); err != nil {
				return "", err
			}
		}
		floor[n] = time.Since(start)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "N releases started at once on the embedded server (Temporal on SQLite, in process) with one worker "+
		"(default options) whose %d activities (resolve, build, GPU test, certify, publish, table) return at once. "+
		"Wall time is from the first start request to the last result. Overhead per step is wall time / (N × %d): "+
		"the amortized cost of one step through Temporal (activity task, its result, the workflow task that follows, "+
		"history writes). Latency is each release's own time from start to result.\n\n", releaseSteps, releaseSteps)
	b.WriteString("| N | wall | releases/s | overhead per step (amortized) | latency p50 | latency p95 | latency max | direct loop (floor) | floor per step |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		steps := float64(r.n * releaseSteps)
		fmt.Fprintf(&b, "| %d | %s | %.1f | %.2f ms | %s | %s | %s | %s | %.0f ns |\n", r.n, r.wall.Round(time.Millisecond),
			float64(r.n)/r.wall.Seconds(), float64(r.wall.Microseconds())/1000/steps,
			pct(r.latencies, 50), pct(r.latencies, 95), pct(r.latencies, 100),
			floor[r.n].Round(time.Microsecond), float64(floor[r.n].Nanoseconds())/steps)
	}
	fmt.Fprintf(&b, "\nOne release at a time (20 runs): p50 %s, min %s, max %s: %.1f ms per step when nothing else runs.\n",
		pct(serial, 50), pct(serial, 0), pct(serial, 100), float64(pctDur(serial, 50).Microseconds())/1000/releaseSteps)
	if len(runs) >= 2 {
		first, last := runs[0], runs[len(runs)-1]
		fmt.Fprintf(&b, "\nGrowth: from N=%d to N=%d the amortized step cost goes from %.2f ms to %.2f ms and the p50 latency from %s to %s; "+
			"the server and worker run on the same %s, so concurrent releases queue for them.\n",
			first.n, last.n, float64(first.wall.Microseconds())/1000/float64(first.n*releaseSteps),
			float64(last.wall.Microseconds())/1000/float64(last.n*releaseSteps), pct(first.latencies, 50), pct(last.latencies, 50), cpuSummary())
	}
	return b.String(), nil
}

// runReleases starts n releases (IDs from first on) at once and waits for all.
func runReleases(ctx context.Context, c client.Client, first, n int) (orchRun, error) {
	start := time.Now()
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // bounded start concurrency of the client side
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			req := benchRequest(first + i)
			t0 := time.Now()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.WorkflowID(req.Kernel, req.Driver.DriverVersion), TaskQueue: release.TaskQueue}, workflows.Release, req)
			<-sem
			if err != nil {
				errs <- err
				return
			}
			var rec release.Record
			if err := run.Get(ctx, &rec); err != nil {
				errs <- err
				return
			}
			if rec.Outcome != release.OutcomeReleased {
				errs <- fmt.Errorf("%s ended as %s", run.GetID(), rec.Outcome)
				return
			}
			lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return orchRun{}, err
	}
	return orchRun{n: n, wall: time.Since(start), latencies: lat}, nil
}

func pctDur(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i]
}

func pct(d []time.Duration, p int) string { return pctDur(d, p).Round(time.Millisecond).String() }

// quietLogger drops the SDK's logs: thousands of workflow runs would bury the progress lines.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func cpuSummary() string { return fmt.Sprintf("%d CPUs", runtime.NumCPU()) }
