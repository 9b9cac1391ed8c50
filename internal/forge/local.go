package forge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

// LocalStandInNote says plainly what the local forge is.
const LocalStandInNote = "rehearsal stand-in: local forge (a git repository and issue files in the state folder), not GitHub"

// Local is a forge in a folder: a git repository (repo/) that holds the Dockerfile and
// release/README.md, and issues as Markdown files (issues/<owner>/<name>/<n>.md).
type Local struct {
	dir         string
	projectRepo string
	mu          sync.Mutex
	now         func() time.Time
}

// NewLocal opens (or creates and seeds) the local forge in dir. projectRepo is the
// owner/name the project's issues are filed under.
func NewLocal(ctx context.Context, dir, projectRepo string) (*Local, error) {
	if err := ValidateRepo("project repo", projectRepo); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("the local forge needs git on the PATH: %w", err)
	}
	l := &Local{dir: dir, projectRepo: projectRepo, now: time.Now}
	if _, err := os.Stat(filepath.Join(l.repo(), ".git")); err == nil {
		return l, nil
	}
	if err := os.MkdirAll(l.repo(), 0o755); err != nil {
		return nil, err
	}
	if _, err := l.git(ctx, "init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	files := map[string][]byte{
		docker.DriverDockerfilePath: docker.DriverDockerfile,
		release.TablePath:           []byte(release.DefaultTablePreamble + "| Image | Intel GPU Driver | RHEL Version | RHOCP Version |\n|---|---|---|---|\n"),
	}
	for p, b := range files {
		full := filepath.Join(l.repo(), p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := l.git(ctx, "add", "-A"); err != nil {
		return nil, err
	}
	if _, err := l.git(ctx, "commit", "-q", "-m", "Seed the local forge with the driver Dockerfile and an empty release table"); err != nil {
		return nil, err
	}
	return l, nil
}

// RepoDir is the git work tree, for people who want to look or commit a Dockerfile fix.
func (l *Local) RepoDir() string { return l.repo() }

func (l *Local) repo() string { return filepath.Join(l.dir, "repo") }

func (l *Local) git(ctx context.Context, args ...string) (string, error) {
	return l.gitEnv(ctx, nil, nil, args...)
}

func (l *Local) gitStdin(ctx context.Context, stdin []byte, args ...string) (string, error) {
	return l.gitEnv(ctx, nil, stdin, args...)
}

func (l *Local) gitEnv(ctx context.Context, env []string, stdin []byte, args ...string) (string, error) {
	full := append([]string{"-C", l.repo(), "-c", "user.name=dgpu-release", "-c", "user.email=dgpu-release@localhost", "-c", "commit.gpgsign=false"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Dockerfile reads the Dockerfile at a revision of the local repository.
func (l *Local) Dockerfile(ctx context.Context, ref string) ([]byte, string, error) {
	if err := release.ValidateRef("dockerfile_ref", ref); err != nil {
		return nil, "", err
	}
	commit, err := l.git(ctx, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return nil, "", errRepo("resolve Dockerfile ref "+ref, l.projectRepo, fmt.Errorf("no such revision in %s", l.repo()))
	}
	content, err := l.git(ctx, "show", commit+":"+docker.DriverDockerfilePath)
	if err != nil {
		return nil, "", errRepo("read "+docker.DriverDockerfilePath, l.projectRepo, err)
	}
	return []byte(content + "\n"), commit, nil
}

// UpdateTable commits the row to release/README.md on main.
func (l *Local) UpdateTable(ctx context.Context, row release.Row, message string) (TableUpdate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path := filepath.Join(l.repo(), release.TablePath)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return TableUpdate{}, err
	}
	t, err := release.ParseTable(string(old))
	if err != nil {
		return TableUpdate{}, errRepo("parse release table", l.projectRepo, err)
	}
	t.Upsert(row)
	rendered := t.Render()
	if rendered == string(old) {
		head, err := l.git(ctx, "rev-parse", "HEAD")
		return TableUpdate{Commit: head, URL: "file://" + l.repo(), Changed: false}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return TableUpdate{}, err
	}
	if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
		return TableUpdate{}, err
	}
	if _, err := l.git(ctx, "add", release.TablePath); err != nil {
		return TableUpdate{}, err
	}
	if _, err := l.git(ctx, "commit", "-q", "-m", message); err != nil {
		return TableUpdate{}, errRepo("commit release table", l.projectRepo, err)
	}
	head, err := l.git(ctx, "rev-parse", "HEAD")
	return TableUpdate{Commit: head, URL: "file://" + l.repo(), Changed: true}, err
}

// ReadTable returns release/README.md as committed on main.
func (l *Local) ReadTable(ctx context.Context) (string, error) {
	return l.git(ctx, "show", "main:"+release.TablePath)
}

func (l *Local) issueDir(repo string) string {
	return filepath.Join(l.dir, "issues", filepath.FromSlash(repo))
}

type localIssue struct {
	number int
	path   string
	marker string
	state  string
}

func (l *Local) findOpen(repo, marker string) (*localIssue, int, error) {
	paths, err := filepath.Glob(filepath.Join(l.issueDir(repo), "*.md"))
	if err != nil {
		return nil, 0, err
	}
	maxN := 0
	var found *localIssue
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".md"))
		if err != nil {
			continue
		}
		if n > maxN {
			maxN = n
		}
		is, err := readIssueHeader(p)
		if err != nil {
			return nil, 0, err
		}
		is.number = n
		if is.marker == marker && is.state == "open" {
			found = is
		}
	}
	return found, maxN, nil
}

func readIssueHeader(path string) (*localIssue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	is := &localIssue{path: path}
	sc := bufio.NewScanner(f)
	for i := 0; i < 8 && sc.Scan(); i++ {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "state: "); ok {
			is.state = v
		}
		if v, ok := strings.CutPrefix(line, "marker: "); ok {
			is.marker = v
		}
	}
	return is, sc.Err()
}

// FileIssue writes issues/<repo>/<n>.md, or comments on the open one with the marker.
func (l *Local) FileIssue(ctx context.Context, in Issue) (IssueRef, error) {
	if err := ValidateRepo("issue repo", in.Repo); err != nil {
		return IssueRef{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	existing, maxN, err := l.findOpen(in.Repo, in.Marker)
	if err != nil {
		return IssueRef{}, errRepo("find issue", in.Repo, err)
	}
	if existing != nil {
		// A retried call (its first attempt's answer lost) finds its report already there.
		if doc, err := os.ReadFile(existing.path); err == nil && strings.Contains(string(doc), in.Title) && strings.Contains(string(doc), in.Body) {
			return IssueRef{Repo: in.Repo, Number: existing.number, URL: "file://" + existing.path}, nil
		}
		if err := l.appendComment(existing.path, in.Title+"\n\n"+in.Body); err != nil {
			return IssueRef{}, errRepo("comment on issue", in.Repo, err)
		}
		return IssueRef{Repo: in.Repo, Number: existing.number, URL: "file://" + existing.path}, nil
	}
	if err := os.MkdirAll(l.issueDir(in.Repo), 0o755); err != nil {
		return IssueRef{}, err
	}
	n := maxN + 1
	path := filepath.Join(l.issueDir(in.Repo), fmt.Sprintf("%d.md", n))
	doc := fmt.Sprintf("state: open\nmarker: %s\nrepo: %s\nnumber: %d\nfiled: %s\nstand-in: %s\n\n# %s\n\n%s\n\n%s\n",
		in.Marker, in.Repo, n, l.now().UTC().Format(time.RFC3339), LocalStandInNote, in.Title, MarkerComment(in.Marker), in.Body)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return IssueRef{}, errRepo("file issue", in.Repo, err)
	}
	return IssueRef{Repo: in.Repo, Number: n, URL: "file://" + path, Created: true}, nil
}

func (l *Local) appendComment(path, body string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n---\n**Comment** (%s)\n\n%s\n", l.now().UTC().Format(time.RFC3339), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Comment appends to the open issue with the marker.
func (l *Local) Comment(_ context.Context, repo, marker, body string) (IssueRef, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	is, _, err := l.findOpen(repo, marker)
	if err != nil {
		return IssueRef{}, errRepo("find issue", repo, err)
	}
	if is == nil {
		return IssueRef{}, errRepo("comment", repo, fmt.Errorf("no open issue with marker %q", marker))
	}
	if err := l.appendComment(is.path, body); err != nil {
		return IssueRef{}, errRepo("comment", repo, err)
	}
	return IssueRef{Repo: repo, Number: is.number, URL: "file://" + is.path}, nil
}

// CloseIssue marks the open issue with the marker closed, after a last comment.
func (l *Local) CloseIssue(_ context.Context, repo, marker, comment string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	is, _, err := l.findOpen(repo, marker)
	if err != nil || is == nil {
		return err
	}
	if err := l.appendComment(is.path, comment); err != nil {
		return errRepo("close issue", repo, err)
	}
	b, err := os.ReadFile(is.path)
	if err != nil {
		return err
	}
	b = bytes.Replace(b, []byte("state: open\n"), []byte("state: closed\n"), 1)
	return os.WriteFile(is.path, b, 0o644)
}

// Issues lists the issues of a repo (number, state, path), for the CLI and tests.
func (l *Local) Issues(repo string) ([]IssueRef, error) {
	paths, err := filepath.Glob(filepath.Join(l.issueDir(repo), "*.md"))
	if err != nil {
		return nil, err
	}
	var out []IssueRef
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".md"))
		if err != nil {
			continue
		}
		out = append(out, IssueRef{Repo: repo, Number: n, URL: "file://" + p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}
