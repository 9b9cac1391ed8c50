package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dgpu-release/internal/devstack"
)

func init() {
	register(section{Name: "start", Order: 50, Title: "Start-up: worker and embedded stack", Run: runStart})
	registerChild("devstack", childDevstack)
}

const (
	startFresh = 3               // runs on a new state folder
	startAgain = 3               // then runs on the state folder of the last of those
	idleWait   = 5 * time.Second // idle time after ready before reading memory
	readyLimit = 5 * time.Minute
)

// workerRun is one start of `worker --dev`.
type workerRun struct {
	label      string
	ready      time.Duration // exec to the first 200 from /readyz
	stackReady time.Duration // the worker's own ready_ms log figure (devstack.Start)
	mem        procMem       // after ready and idle
	stop       time.Duration // SIGTERM to exit
	exit       string
}

func runStart(ctx context.Context, e *env) (string, error) {
	bin, build, err := e.WorkerBinary(ctx)
	if err != nil {
		return "", err
	}
	var runs []workerRun
	for i := 1; i <= startFresh+startAgain; i++ {
		state := e.Path(fmt.Sprintf("worker-state-%d", i))
		label := fmt.Sprintf("new state folder, run %d", i)
		if i > startFresh {
			state = e.Path(fmt.Sprintf("worker-state-%d", startFresh))
			label = fmt.Sprintf("existing state folder (that of run %d), run %d", startFresh, i)
		}
		e.Logf("start: worker --dev, %s", label)
		r, err := startWorker(ctx, e, bin, state, e.Path(fmt.Sprintf("worker-%d.log", i)))
		if err != nil {
			return "", fmt.Errorf("worker --dev (%s): %w", label, err)
		}
		r.label = label
		runs = append(runs, r)
		e.Logf("  ready in %s, RSS %s after %s idle, stopped in %s", fmtDur(r.ready), fmtMiB(r.mem.RSS), idleWait, fmtDur(r.stop))
	}

	base, err := e.Baseline(ctx)
	if err != nil {
		return "", err
	}
	type dsRun struct {
		label string
		res   devstackResult
		st    childStats
	}
	var ds []dsRun
	for i := 1; i <= startFresh+startAgain; i++ {
		state := e.Path(fmt.Sprintf("devstack-state-%d", i))
		label := fmt.Sprintf("new state folder, run %d", i)
		if i > startFresh {
			state = e.Path(fmt.Sprintf("devstack-state-%d", startFresh))
			label = fmt.Sprintf("existing state folder (that of run %d), run %d", startFresh, i)
		}
		e.Logf("start: devstack.Start in a child process, %s", label)
		var res devstackResult
		st, err := e.RunChild(ctx, "devstack", devstackArg{StateDir: state}, &res)
		if err != nil {
			return "", fmt.Errorf("devstack.Start (%s): %w", label, err)
		}
		ds = append(ds, dsRun{label: label, res: res, st: st})
		e.Logf("  ready in %s, RSS %s after %s idle", fmtDur(res.Ready), fmtMiB(res.Mem.RSS), idleWait)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "The worker binary (`go build -o DIR/worker ./worker`: %s with the Go build cache as the run found it, %s) run as "+
		"`worker --dev --state DIR --temporal-port P --ui-port P --registry-port P --health-addr 127.0.0.1:P` on free loopback ports, "+
		"polled on `/readyz` every 20 ms until it answers 200 (the embedded stack is up and the worker polls its task queue), left idle %s, "+
		"then read `/proc/PID/status` and stopped with SIGTERM. %d runs on new state folders, then %d on the state folder of the last.\n\n",
		fmtDur(build), binSize(bin), idleWait, startFresh, startAgain)
	b.WriteString("| worker run | exec → /readyz 200 | devstack.Start (worker's `ready_ms`) | VmRSS after idle | RssAnon | VmHWM | threads | SIGTERM → exit | exit |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	var ready, stack [2][]time.Duration
	var rss [2][]int64
	for i, r := range runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", r.label, fmtDur(r.ready), fmtDur(r.stackReady), fmtMiB(r.mem.RSS), fmtMiB(r.mem.RSSAnon), fmtMiB(r.mem.HWM), r.mem.Threads, fmtDur(r.stop), r.exit)
		k := 0
		if i >= startFresh {
			k = 1
		}
		ready[k] = append(ready[k], r.ready)
		stack[k] = append(stack[k], r.stackReady)
		rss[k] = append(rss[k], r.mem.RSS)
	}
	b.WriteString("\n| worker | runs | exec → ready, median | min | devstack.Start, median | VmRSS after idle, median |\n|---|---:|---:|---:|---:|---:|\n")
	for k, what := range []string{"new state folder", "existing state folder"} {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", what, len(ready[k]), fmtDur(median(ready[k])), fmtDur(minDur(ready[k])), fmtDur(median(stack[k])), fmtMiB(medianInt64(rss[k])))
	}
	b.WriteString("\n")

	b.WriteString("### The embedded stack alone, in process\n\n")
	fmt.Fprintf(&b, "`devstack.Start` (Temporal server with every service on SQLite, web UI, registry; every port 0, so free ones) with a temp state folder, "+
		"in a child process (the bench binary re-run), timed inside the child around `Start`; `/proc/self/status` read after %s idle, then `Stop`. "+
		"Peak RSS is the child's VmHWM as it ends (after `Stop`), the high-water mark reset just before `Start`. %s\n\n", idleWait, baselineLine(base))
	b.WriteString("| devstack run | Start → ready | Stack.Ready | Stop | VmRSS after idle | RssAnon | peak RSS (VmHWM) | Go heap peak | threads |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var dsReady [2][]time.Duration
	var dsRSS [2][]int64
	for i, d := range ds {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", d.label, fmtDur(d.res.Ready), fmtDur(d.res.StackReady), fmtDur(d.res.Stop),
			fmtMiB(d.res.Mem.RSS), fmtMiB(d.res.Mem.RSSAnon), fmtMiB(d.st.HWM), fmtMiB(int64(d.st.HeapPeak)), d.res.Mem.Threads)
		k := 0
		if i >= startFresh {
			k = 1
		}
		dsReady[k] = append(dsReady[k], d.res.Ready)
		dsRSS[k] = append(dsRSS[k], d.res.Mem.RSS)
	}
	b.WriteString("\n| devstack.Start | runs | median | min | VmRSS after idle, median |\n|---|---:|---:|---:|---:|\n")
	for k, what := range []string{"new state folder", "existing state folder"} {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", what, len(dsReady[k]), fmtDur(median(dsReady[k])), fmtDur(minDur(dsReady[k])), fmtMiB(medianInt64(dsRSS[k])))
	}
	return b.String(), nil
}

func binSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "size unknown"
	}
	return fmtMiB(fi.Size()) + " binary"
}

// startWorker runs `worker --dev` until ready, idles, reads its memory and stops it.
func startWorker(ctx context.Context, e *env, bin, state, logPath string) (workerRun, error) {
	var r workerRun
	temporal, err := freePortRun(8) // the frontend and the 7 internal ports that follow it
	if err != nil {
		return r, err
	}
	var ports []int // UI, registry, health
	for len(ports) < 3 {
		p, err := freePort()
		if err != nil {
			return r, err
		}
		if (p < temporal || p >= temporal+8) && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	health := fmt.Sprintf("127.0.0.1:%d", ports[2])
	logf, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--dev", "--state", state, "--temporal-port", strconv.Itoa(temporal),
		"--ui-port", strconv.Itoa(ports[0]), "--registry-port", strconv.Itoa(ports[1]), "--health-addr", health)
	cmd.Stdout, cmd.Stderr = logf, logf
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEMPORAL_") && !strings.HasPrefix(kv, "DGPU_STATE_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	failLog := func(err error) error {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nworker log (%s):\n%s", err, logPath, tail(string(b), 20))
	}
	url := "http://" + health + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.ready = time.Since(t0)
				break
			}
		}
		if time.Since(t0) > readyLimit {
			return r, failLog(fmt.Errorf("not ready after %s", readyLimit))
		}
		select {
		case err := <-exited:
			stopped = true
			return r, failLog(fmt.Errorf("the worker exited before it was ready: %v", err))
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case err := <-exited:
		stopped = true
		return r, failLog(fmt.Errorf("the worker exited while idle: %v", err))
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(idleWait):
	}
	if r.mem, err = readProcMem(cmd.Process.Pid); err != nil {
		return r, err
	}
	r.stackReady = readyMS(logPath)
	t1 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return r, err
	}
	select {
	case err := <-exited:
		r.stop = time.Since(t1)
		stopped = true
		r.exit = "0"
		if err != nil {
			r.exit = err.Error()
		}
	case <-time.After(60 * time.Second):
		return r, failLog(errors.New("the worker did not exit within 60 s of SIGTERM"))
	}
	return r, nil
}

// readyMS finds the ready_ms field of the worker's "embedded default started" log line.
func readyMS(logPath string) time.Duration {
	f, err := os.Open(logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string  `json:"msg"`
			ReadyMS float64 `json:"ready_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "embedded default started" {
			return time.Duration(line.ReadyMS * float64(time.Millisecond))
		}
	}
	return 0
}

type devstackArg struct{ StateDir string }

type devstackResult struct {
	Ready      time.Duration // around devstack.Start
	StackReady time.Duration // Stack.Ready, as devstack measures itself
	Stop       time.Duration
	Mem        procMem // after ready and idle
}

func childDevstack(ctx context.Context, raw json.RawMessage) (any, error) {
	var a devstackArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	t0 := time.Now()
	s, err := devstack.Start(ctx, devstack.Config{StateDir: a.StateDir})
	if err != nil {
		return nil, err
	}
	res := devstackResult{Ready: time.Since(t0), StackReady: s.Ready}
	select {
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	case <-time.After(idleWait):
	}
	res.Mem, err = readProcMem(0)
	t1 := time.Now()
	s.Stop()
	res.Stop = time.Since(t1)
	return res, err
}
