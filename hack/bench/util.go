package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// goTool is the go command: the one on the PATH, else the one of this binary's toolchain.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// RepoRoot is the folder of the dgpu-release module, found from the working directory up.
func (e *env) RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module dgpu-release") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no dgpu-release go.mod in %s or above: run the bench from the repository (go run ./hack/bench)", dir)
		}
	}
}

// WorkerBinary builds ./worker once per run into the temp folder and returns its path
// and how long the build took (with the Go build cache as it was).
func (e *env) WorkerBinary(ctx context.Context) (string, time.Duration, error) {
	e.workerOnce.Do(func() {
		root, err := e.RepoRoot()
		if err != nil {
			e.workerErr = err
			return
		}
		out := e.Path("bin", "worker")
		e.Logf("building the worker: go build -o %s ./worker (minutes if the Temporal server is not in the build cache)", out)
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, "./worker")
		cmd.Dir = root
		t0 := time.Now()
		b, err := cmd.CombinedOutput()
		e.workerBuild = time.Since(t0)
		if err != nil {
			e.workerErr = fmt.Errorf("go build ./worker: %v\n%s", err, tail(string(b), 30))
			return
		}
		e.workerPath = out
		e.Logf("worker built in %s", fmtDur(e.workerBuild))
	})
	return e.workerPath, e.workerBuild, e.workerErr
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freePortRun returns a port p such that p..p+n-1 were all free a moment ago.
func freePortRun(n int) (int, error) {
	for try := 0; try < 50; try++ {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if p+n-1 > 65535 {
			continue
		}
		ok := true
		for q := p; q < p+n; q++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("found no run of %d free loopback ports", n)
}

// procStatusKiB reads a "Key:   123 kB" line of a /proc status-like file.
func procStatusKiB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s line", path, key)
}

// procMem is the memory of a process from /proc/PID/status, in bytes.
type procMem struct {
	RSS, HWM, RSSAnon, RSSFile int64
	Threads                    int64
}

func readProcMem(pid int) (procMem, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	if pid == 0 {
		path = "/proc/self/status"
	}
	var m procMem
	for _, f := range []struct {
		key string
		dst *int64
		kib bool
	}{{"VmRSS", &m.RSS, true}, {"VmHWM", &m.HWM, true}, {"RssAnon", &m.RSSAnon, true}, {"RssFile", &m.RSSFile, true}, {"Threads", &m.Threads, false}} {
		v, err := procStatusKiB(path, f.key)
		if err != nil {
			return m, err
		}
		if f.kib {
			v *= 1024
		}
		*f.dst = v
	}
	return m, nil
}

// stats of repeated durations.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minDur(ds []time.Duration) time.Duration {
	m := time.Duration(0)
	for i, d := range ds {
		if i == 0 || d < m {
			m = d
		}
	}
	return m
}

func maxInt64(vs []int64) int64 {
	var m int64
	for _, v := range vs {
		if v > m {
			m = v
		}
	}
	return m
}

func medianInt64(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]int64(nil), vs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.3g ms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Second:
		return fmt.Sprintf("%.3g s", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func fmtDurs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDur(d)
	}
	return strings.Join(parts, ", ")
}

func fmtMiB(b int64) string {
	switch {
	case b >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	default:
		return fmt.Sprintf("%d B", b)
	}
}

// rate is MiB/s of bytes over a duration.
func rate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB/s", float64(bytes)/(1<<20)/d.Seconds())
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitExit waits for a started command, up to a timeout, then kills it.
func waitExit(cmd *exec.Cmd, timeout time.Duration) (killed bool, err error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return false, err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		return true, errors.Join(errors.New("killed after "+timeout.String()), <-done)
	}
}
