package forge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

// The local forge's stand-ins for the driver repositories and pull requests: tags are
// lines of driver-tags/<owner>/<name>.txt (add a line to publish a tag), a pull request
// is a branch of the local repository plus pulls/<n>.json, and it is merged when its
// branch is merged into main (git -C <forge>/repo merge <branch>).

func (l *Local) tagFile(repo string) string {
	return filepath.Join(l.dir, "driver-tags", filepath.FromSlash(repo)+".txt")
}

// SeedTags writes the tag list of a driver repository if it has none yet.
func (l *Local) SeedTags(repo string, tags ...string) error {
	p := l.tagFile(repo)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte("# "+LocalStandInNote+": one tag per line\n"+strings.Join(tags, "\n")+"\n"), 0o644)
}

// LatestTag returns the newest tag of the local tag list by its work-week date.
func (l *Local) LatestTag(_ context.Context, repo string) (string, error) {
	if err := ValidateRepo("driver repo", repo); err != nil {
		return "", err
	}
	f, err := os.Open(l.tagFile(repo))
	if err != nil {
		return "", errRepo("list tags", repo, err)
	}
	defer f.Close()
	var tags []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" && !strings.HasPrefix(t, "#") {
			tags = append(tags, t)
		}
	}
	t, ok := NewestTag(tags)
	if !ok {
		return "", errRepo("list tags", repo, fmt.Errorf("no tag with a <yy>WW<ww>.<d> date in %s", l.tagFile(repo)))
	}
	return t, nil
}

// BumpDockerfile commits the bumped Dockerfile on the bump branch and records the pull request.
func (l *Local) BumpDockerfile(ctx context.Context, d release.DriverSet) (PullRequest, error) {
	if err := d.Validate(""); err != nil {
		return PullRequest{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	branch := BumpBranch(d)
	pullsDir := filepath.Join(l.dir, "pulls")
	if err := os.MkdirAll(pullsDir, 0o755); err != nil {
		return PullRequest{}, err
	}
	entries, _ := os.ReadDir(pullsDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(pullsDir, e.Name()))
		if err != nil {
			return PullRequest{}, err
		}
		var pr PullRequest
		if json.Unmarshal(b, &pr) == nil && pr.Branch == branch {
			return pr, nil // a second run finds the pull request
		}
	}
	if _, err := l.git(ctx, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		if _, err := l.git(ctx, "branch", branch, "main"); err != nil {
			return PullRequest{}, err
		}
	}
	old, err := l.git(ctx, "show", branch+":"+docker.DriverDockerfilePath)
	if err != nil {
		return PullRequest{}, err
	}
	bumped, err := docker.PinDriver([]byte(old+"\n"), d.I915Tag, d.FirmwareTag, d.DriverVersion)
	if err != nil {
		return PullRequest{}, err
	}
	// Commit on the branch without touching the work tree: write the blob, a tree and a commit.
	blob, err := l.gitStdin(ctx, bumped, "hash-object", "-w", "--stdin")
	if err != nil {
		return PullRequest{}, err
	}
	tree, err := l.treeWith(ctx, branch, docker.DriverDockerfilePath, blob)
	if err != nil {
		return PullRequest{}, err
	}
	msg := fmt.Sprintf("Bump the driver to %s (i915 %s, firmware %s)", d.DriverVersion, d.I915Tag, d.FirmwareTag)
	commit, err := l.git(ctx, "commit-tree", tree, "-p", branch, "-m", msg)
	if err != nil {
		return PullRequest{}, err
	}
	if _, err := l.git(ctx, "update-ref", "refs/heads/"+branch, commit); err != nil {
		return PullRequest{}, err
	}
	pr := PullRequest{Number: len(entries) + 1, Branch: branch, Commit: commit, Created: true}
	pr.URL = "file://" + filepath.Join(pullsDir, strconv.Itoa(pr.Number)+".json")
	b, _ := json.MarshalIndent(pr, "", "  ")
	if err := os.WriteFile(strings.TrimPrefix(pr.URL, "file://"), b, 0o644); err != nil {
		return PullRequest{}, err
	}
	return pr, nil
}

// treeWith returns the tree of rev with one file replaced by blob.
func (l *Local) treeWith(ctx context.Context, rev, path, blob string) (string, error) {
	idx := filepath.Join(l.dir, "bump.index")
	defer os.Remove(idx)
	env := []string{"GIT_INDEX_FILE=" + idx}
	if _, err := l.gitEnv(ctx, env, nil, "read-tree", rev); err != nil {
		return "", err
	}
	if _, err := l.gitEnv(ctx, env, nil, "update-index", "--cacheinfo", "100644,"+blob+","+path); err != nil {
		return "", err
	}
	return l.gitEnv(ctx, env, nil, "write-tree")
}

// PullRequestMerged reports whether the pull request's branch is merged into main.
func (l *Local) PullRequestMerged(ctx context.Context, number int) (bool, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, "pulls", strconv.Itoa(number)+".json"))
	if err != nil {
		return false, errRepo("read pull request", l.projectRepo, err)
	}
	var pr PullRequest
	if err := json.Unmarshal(b, &pr); err != nil {
		return false, err
	}
	_, err = l.git(ctx, "merge-base", "--is-ancestor", pr.Commit, "main")
	return err == nil, nil
}
