// Command bench measures the release automation and writes the figures to BENCHMARKS.md.
//
//	go run ./hack/bench                        # every section, into BENCHMARKS.md
//	go run ./hack/bench -only publish,certify  # some sections (the file then holds only those)
//	go run ./hack/bench -size 256 -keep        # a smaller image; keep the temp folder
//
// Benchmarks are measurements written to a file, never assertions: a section fails only
// when it cannot measure (a tool is missing, a step errs), and then the file says why and
// the command exits non-zero.
//
// Each section lives in its own file and registers itself from init() with register.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// section is one part of BENCHMARKS.md.
type section struct {
	Name  string // flag name for -only
	Order int    // position in BENCHMARKS.md (orchestration 10, matrix 20, publish 30, certify 40, start 50)
	Title string
	Run   func(ctx context.Context, e *env) (string, error) // returns the markdown body
}

var sections = map[string]section{}

// register adds a section; each section file calls it from init().
func register(s section) {
	if s.Name == "" || s.Run == nil {
		panic("bench: a section needs a name and a Run function")
	}
	if _, dup := sections[s.Name]; dup {
		panic("bench: section " + s.Name + " is registered twice")
	}
	sections[s.Name] = s
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(runChild(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "file to write the figures to")
	only := fs.String("only", "", "comma-separated sections to run (default all: "+strings.Join(sectionNames(), ", ")+"); the file then holds only those")
	size := fs.Int("size", 1024, "size in MiB of the random data in the benchmark image")
	keep := fs.Bool("keep", false, "keep the temp folder (images, registry data, logs) instead of removing it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *size < 8 {
		fmt.Fprintf(os.Stderr, "bench: -size %d is too small: at least 8 (MiB, one per random layer)\n", *size)
		return 2
	}
	chosen, err := choose(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}

	dir, err := os.MkdirTemp("", "dgpu-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: temp folder:", err)
		return 1
	}
	e := &env{Dir: dir, Log: os.Stderr, SizeMiB: *size, start: time.Now()}
	defer func() {
		e.close()
		if *keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := collectHost(ctx, args, chosen, *only != "")
	var body strings.Builder
	failed := 0
	for _, s := range chosen {
		e.Logf("section %s: start", s.Name)
		t0 := time.Now()
		text, err := runSection(ctx, e, s)
		took := time.Since(t0)
		fmt.Fprintf(&body, "\n## %s\n\n", s.Title)
		fmt.Fprintf(&body, "_Section `%s`, measured in %s._\n\n", s.Name, fmtDur(took))
		if text != "" {
			body.WriteString(strings.TrimRight(text, "\n") + "\n")
		}
		if err != nil {
			failed++
			fmt.Fprintf(&body, "\n**FAILED**: the section could not finish its measurements:\n\n```\n%s\n```\n", err)
			e.Logf("section %s: FAILED after %s: %v", s.Name, fmtDur(took), err)
		} else {
			e.Logf("section %s: done in %s", s.Name, fmtDur(took))
		}
	}
	h.loadEnd = loadAvg()
	h.total = time.Since(e.start)
	doc := h.markdown() + body.String()
	if err := writeFile(*out, []byte(doc)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	e.Logf("wrote %s", *out)
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d section(s) failed; see %s\n", failed, *out)
		return 1
	}
	return 0
}

func sectionNames() []string {
	var names []string
	for _, s := range ordered() {
		names = append(names, s.Name)
	}
	return names
}

func ordered() []section {
	var all []section
	for _, s := range sections {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Order != all[j].Order {
			return all[i].Order < all[j].Order
		}
		return all[i].Name < all[j].Name
	})
	return all
}

func choose(only string) ([]section, error) {
	if strings.TrimSpace(only) == "" {
		return ordered(), nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, ok := sections[n]; !ok {
			return nil, fmt.Errorf("-only: no section %q; the sections are %s", n, strings.Join(sectionNames(), ", "))
		}
		want[n] = true
	}
	var out []section
	for _, s := range ordered() {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// runSection runs one section, turning a panic into its error so the others still run.
func runSection(ctx context.Context, e *env, s section) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return s.Run(ctx, e)
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// host describes the machine and the run for the file's header.
type host struct {
	date      time.Time
	command   string
	goVersion string
	cpu       string
	ncpu      int
	memTotal  string
	loadStart string
	loadEnd   string
	names     []string
	only      bool
	total     time.Duration
}

func collectHost(ctx context.Context, args []string, chosen []section, only bool) *host {
	h := &host{date: time.Now().UTC(), ncpu: runtime.NumCPU(), loadStart: loadAvg(), only: only}
	h.command = "go run ./hack/bench"
	if !strings.Contains(os.Args[0], "go-build") {
		h.command = os.Args[0]
	}
	for _, a := range args {
		h.command += " " + shellQuote(a)
	}
	h.goVersion = runtime.Version() + " (the bench binary's toolchain)"
	if b, err := exec.CommandContext(ctx, goTool(), "version").Output(); err == nil {
		h.goVersion = strings.TrimSpace(string(b))
	}
	h.cpu = "unknown (no model name in /proc/cpuinfo)"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	h.memTotal = "unknown"
	if kib, err := procStatusKiB("/proc/meminfo", "MemTotal"); err == nil {
		h.memTotal = fmtMiB(kib * 1024)
	}
	for _, s := range chosen {
		h.names = append(h.names, s.Name)
	}
	return h
}

func (h *host) markdown() string {
	var b bytes.Buffer
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Measurements of the release automation, written by `go run ./hack/bench` (flags: `-out FILE`, `-only name1,name2`, `-size MiB`, `-keep`). ")
	b.WriteString("They are figures from one run on the machine below, not assertions: expect run-to-run noise, ")
	b.WriteString("more so on a small or shared machine. Each section says how many times it repeated a measurement.\n\n")
	if h.only {
		b.WriteString("This file was written with `-only`: it holds only the sections named below, not every section the command has (" + strings.Join(sectionNames(), ", ") + ").\n\n")
	}
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", h.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| command | `%s` |\n", h.command)
	fmt.Fprintf(&b, "| Go | %s |\n", h.goVersion)
	fmt.Fprintf(&b, "| CPU | %s |\n", h.cpu)
	fmt.Fprintf(&b, "| logical CPUs (nproc) | %d |\n", h.ncpu)
	fmt.Fprintf(&b, "| memory | %s |\n", h.memTotal)
	fmt.Fprintf(&b, "| load average (1, 5, 15 min) at start / end | %s / %s |\n", h.loadStart, h.loadEnd)
	fmt.Fprintf(&b, "| sections | %s |\n", strings.Join(h.names, ", "))
	fmt.Fprintf(&b, "| whole run | %s |\n", fmtDur(h.total))
	return b.String()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ',' || r == '=' || r == ':' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// env is what sections share: a temp folder, progress output and the services and
// artefacts that several sections use, made once per run on first use.
type env struct {
	Dir     string    // temp dir for this run
	Log     io.Writer // progress lines to stderr (long work must print progress)
	SizeMiB int       // size of the random data of the benchmark image

	start    time.Time
	mu       sync.Mutex
	cleanups []func()

	tpOnce sync.Once
	tpHost string
	tpDesc string
	tpErr  error

	imgOnce sync.Once
	img     *benchImage
	imgErr  error

	workerOnce  sync.Once
	workerPath  string
	workerBuild time.Duration
	workerErr   error

	baseOnce sync.Once
	base     []childStats
	baseErr  error
}

// Logf prints a progress line with the time since the start of the run.
func (e *env) Logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.Log, "[bench +%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// OnClose registers work for the end of the run (stopping servers), run last first.
func (e *env) OnClose(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *env) close() {
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// Path is a path inside the run's temp folder.
func (e *env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Dir}, elem...)...)
}
