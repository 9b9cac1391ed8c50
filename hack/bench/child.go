package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"
)

// Memory is measured in child processes: the bench binary re-executes itself with
// childArg and the name of a registered child function, so that each measurement starts
// from a fresh process and its peak RSS belongs to it alone. The peak is the VmHWM the
// child reads from /proc/self/status as it ends, not the rusage ru_maxrss the parent
// gets: Go starts children with vfork (CLONE_VM), and Linux folds the high-water mark of
// the memory the child shared until exec, the parent's, into ru_maxrss, so every child
// would report at least the parent's peak.
const childArg = "-bench-child"

// childFunc runs one measurement in a child process; its result is JSON-encoded back.
type childFunc func(ctx context.Context, arg json.RawMessage) (any, error)

var children = map[string]childFunc{}

// registerChild makes fn runnable with e.RunChild(name, ...); call it from init().
func registerChild(name string, fn childFunc) {
	if _, dup := children[name]; dup {
		panic("bench: child " + name + " is registered twice")
	}
	children[name] = fn
}

func init() {
	registerChild("noop", func(context.Context, json.RawMessage) (any, error) { return struct{}{}, nil })
}

// childReport is what a child prints on stdout.
type childReport struct {
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Elapsed  time.Duration   `json:"elapsed"`   // of the function alone
	HeapPeak uint64          `json:"heap_peak"` // sampled Go heap (live + unswept objects)
	HWM      int64           `json:"hwm"`       // VmHWM at the end, bytes (reset just before the function)
	Before   procMem         `json:"before"`    // memory just before the function, after start-up
	After    procMem         `json:"after"`     // memory at the end
	HWMReset bool            `json:"hwm_reset"` // the high-water mark was reset before the function
}

// childStats is a finished child's figures.
type childStats struct {
	Elapsed  time.Duration // the function alone, measured in the child
	Wall     time.Duration // from exec to exit, measured by the parent
	MaxRSS   int64         // rusage ru_maxrss of the child, bytes (includes the parent's peak: see above)
	HWM      int64         // VmHWM the child read at its end, bytes: its peak RSS during the function
	Before   procMem       // the child's memory just before the function (start-up done)
	After    procMem       // and at its end
	HWMReset bool          // false when /proc/self/clear_refs could not reset VmHWM: HWM then includes start-up
	HeapPeak uint64
}

// Growth is how far the peak RSS rose above the RSS at the function's start.
func (s childStats) Growth() int64 { return s.HWM - s.Before.RSS }

// heapSampleEvery is how often children sample the Go heap.
const heapSampleEvery = 5 * time.Millisecond

func runChild(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "bench child: want NAME JSON-ARG")
		return 2
	}
	fn, ok := children[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench child: no child %q\n", args[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	// Reset the RSS high-water mark to the current RSS ("5" to clear_refs, Linux 4.0+),
	// so that VmHWM at the end is the peak of the function, start-up excluded.
	var rep childReport
	rep.HWMReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	rep.Before, _ = readProcMem(0)
	t0 := time.Now()
	res, err := fn(ctx, json.RawMessage(args[1]))
	rep.Elapsed = time.Since(t0)
	close(done)
	wg.Wait()
	rep.HeapPeak = peak
	if m, merr := readProcMem(0); merr == nil {
		rep.HWM, rep.After = m.HWM, m
	}
	if err != nil {
		rep.Error = err.Error()
	}
	if res != nil {
		b, merr := json.Marshal(res)
		if merr != nil && err == nil {
			rep.Error = "encode result: " + merr.Error()
		}
		rep.Result = b
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	if rep.Error != "" {
		return 1
	}
	return 0
}

// RunChild runs a registered child function in a new process of this binary and decodes
// its result into out (when not nil). The child's stderr goes to the progress output.
func (e *env) RunChild(ctx context.Context, name string, arg any, out any) (childStats, error) {
	self, err := os.Executable()
	if err != nil {
		return childStats{}, fmt.Errorf("find the bench binary to re-run: %w", err)
	}
	a, err := json.Marshal(arg)
	if err != nil {
		return childStats{}, err
	}
	cmd := exec.CommandContext(ctx, self, childArg, name, string(a))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, e.Log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	t0 := time.Now()
	runErr := cmd.Run()
	st := childStats{Wall: time.Since(t0)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			st.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return st, fmt.Errorf("child %s: %v; no report (%v): %q", name, runErr, err, tail(stdout.String(), 5))
	}
	st.Elapsed, st.HeapPeak, st.HWM = rep.Elapsed, rep.HeapPeak, rep.HWM
	st.Before, st.After, st.HWMReset = rep.Before, rep.After, rep.HWMReset
	if rep.Error != "" {
		return st, fmt.Errorf("child %s: %s", name, rep.Error)
	}
	if runErr != nil {
		return st, fmt.Errorf("child %s: %w", name, runErr)
	}
	if out != nil && len(rep.Result) > 0 {
		if err := json.Unmarshal(rep.Result, out); err != nil {
			return st, fmt.Errorf("child %s result: %w", name, err)
		}
	}
	return st, nil
}

// Baseline is the peak RSS of a child that does nothing (the bench binary's own start-up,
// every package's init included), run three times once per run.
func (e *env) Baseline(ctx context.Context) ([]childStats, error) {
	e.baseOnce.Do(func() {
		for range 3 {
			st, err := e.RunChild(ctx, "noop", struct{}{}, nil)
			if err != nil {
				e.baseErr = err
				return
			}
			e.base = append(e.base, st)
		}
	})
	if e.baseErr != nil {
		return nil, errors.Join(errors.New("baseline child"), e.baseErr)
	}
	return e.base, nil
}

// baselineLine is a sentence about the baseline for a section's notes.
func baselineLine(base []childStats) string {
	var rss, anon, file, heap []int64
	var wall []time.Duration
	for _, b := range base {
		rss = append(rss, b.Before.RSS)
		anon = append(anon, b.Before.RSSAnon)
		file = append(file, b.Before.RSSFile)
		heap = append(heap, int64(b.HeapPeak))
		wall = append(wall, b.Wall)
	}
	return fmt.Sprintf("A child that does nothing (the bench binary, every linked package's init done) has %s RSS once started: %s anonymous, %s file-backed "+
		"(pages of the bench binary, which links the Temporal server for the start section), and a %s Go heap (medians of %d; exec to exit %s). "+
		"Each child resets its RSS high-water mark (`echo 5 > /proc/self/clear_refs`) just before the measured work and reads VmHWM after it, "+
		"so \"peak RSS\" is the peak during the work and \"growth\" is that peak less the RSS the work started from.",
		fmtMiB(medianInt64(rss)), fmtMiB(medianInt64(anon)), fmtMiB(medianInt64(file)), fmtMiB(medianInt64(heap)), len(base), fmtDur(median(wall))) + resetNote(base)
}

func resetNote(runs []childStats) string {
	for _, r := range runs {
		if !r.HWMReset {
			return " **Here `/proc/self/clear_refs` could not be written, so the peaks include the start-up.**"
		}
	}
	return ""
}
