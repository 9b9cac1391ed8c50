package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-github/v57/github"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
	"dgpu-release/internal/waits"
)

// EnvGitHubToken holds the GitHub token; it is read from the environment only.
const EnvGitHubToken = "GITHUB_TOKEN"

// IssueLabel marks the issues this tool files, so they are found again.
const IssueLabel = "dgpu-release"

// GitHubConfig configures the GitHub forge.
type GitHubConfig struct {
	ProjectRepo string // owner/name of this project (Dockerfile, release table, issues)
	BaseBranch  string // default main
	// TableByPullRequest opens a pull request for table updates; false commits to BaseBranch.
	TableByPullRequest bool
	Token              string // default $GITHUB_TOKEN
	APIURL             string // default https://api.github.com/ (GitHub Enterprise: https://host/api/v3/)
	HTTPClient         *http.Client
	// MaxWait bounds one wait for a rate limit to reset (default 15 minutes).
	MaxWait time.Duration
}

// GitHub is the forge on GitHub, through go-github.
type GitHub struct {
	c       *github.Client
	owner   string
	repo    string
	base    string
	tablePR bool
	maxWait time.Duration
	sleep   func(context.Context, time.Duration) error
	now     func() time.Time
}

// NewGitHub checks the configuration.
func NewGitHub(cfg GitHubConfig) (*GitHub, error) {
	if err := ValidateRepo("project repo", cfg.ProjectRepo); err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv(EnvGitHubToken)
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("GitHub: no token: set %s", EnvGitHubToken)
	}
	if cfg.BaseBranch == "" {
		cfg.BaseBranch = "main"
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 15 * time.Minute
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	c := github.NewClient(hc).WithAuthToken(cfg.Token)
	if cfg.APIURL != "" {
		u, err := url.Parse(strings.TrimSuffix(cfg.APIURL, "/") + "/")
		if err != nil || u.Scheme == "" {
			return nil, &release.FieldError{Field: "GitHub API URL", Value: cfg.APIURL, Accepted: "an absolute URL such as https://api.github.com/"}
		}
		c.BaseURL = u
	}
	owner, name, _ := strings.Cut(cfg.ProjectRepo, "/")
	return &GitHub{c: c, owner: owner, repo: name, base: cfg.BaseBranch, tablePR: cfg.TableByPullRequest, maxWait: cfg.MaxWait, sleep: waits.Sleep, now: time.Now}, nil
}

// PermanentError is a GitHub answer that retrying will not change.
type PermanentError struct{ err error }

func (e *PermanentError) Error() string   { return e.err.Error() }
func (e *PermanentError) Unwrap() error   { return e.err }
func (e *PermanentError) Permanent() bool { return true }

// call runs one API call, waiting out primary and secondary rate limits and retrying
// server errors a few times. Errors name the repository and the operation.
func (g *GitHub) call(ctx context.Context, op, repo string, fn func() (*github.Response, error)) error {
	var last error
	for attempt := 1; attempt <= 5; attempt++ {
		resp, err := fn()
		if err == nil {
			return nil
		}
		var wait time.Duration
		var rl *github.RateLimitError
		var abuse *github.AbuseRateLimitError
		var ge *github.ErrorResponse
		switch {
		case errors.As(err, &rl):
			wait = rl.Rate.Reset.Time.Sub(g.now()) + time.Second
		case errors.As(err, &abuse):
			wait = time.Minute
			if abuse.RetryAfter != nil {
				wait = *abuse.RetryAfter
			}
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			wait = time.Minute
			if s := resp.Header.Get("Retry-After"); s != "" {
				if d, perr := time.ParseDuration(s + "s"); perr == nil {
					wait = d
				}
			}
		case resp != nil && resp.StatusCode >= 500:
			wait = time.Duration(attempt) * time.Second
		case errors.As(err, &ge) && ge.Response != nil:
			return &PermanentError{fmt.Errorf("GitHub %s in %s: %w", op, repo, err)}
		default:
			return fmt.Errorf("GitHub %s in %s: %w", op, repo, err)
		}
		last = err
		if wait < time.Second {
			wait = time.Second
		}
		if wait > g.maxWait {
			return fmt.Errorf("GitHub %s in %s: rate limited for %s, longer than the %s this call waits: %w", op, repo, wait.Round(time.Second), g.maxWait, err)
		}
		if err := g.sleep(ctx, wait); err != nil {
			return err
		}
	}
	return fmt.Errorf("GitHub %s in %s: gave up after 5 attempts: %w", op, repo, last)
}

func (g *GitHub) project() string { return g.owner + "/" + g.repo }

func isStatus(err error, code int) bool {
	var ge *github.ErrorResponse
	return errors.As(err, &ge) && ge.Response != nil && ge.Response.StatusCode == code
}

// Dockerfile reads docker/intel-dgpu-driver.Dockerfile at a ref.
func (g *GitHub) Dockerfile(ctx context.Context, ref string) ([]byte, string, error) {
	if err := release.ValidateRef("dockerfile_ref", ref); err != nil {
		return nil, "", err
	}
	var sha string
	if err := g.call(ctx, "resolve "+ref, g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		sha, resp, err = g.c.Repositories.GetCommitSHA1(ctx, g.owner, g.repo, ref, "")
		return resp, err
	}); err != nil {
		return nil, "", err
	}
	content, _, err := g.file(ctx, docker.DriverDockerfilePath, sha)
	return content, sha, err
}

func (g *GitHub) file(ctx context.Context, path, ref string) ([]byte, string, error) {
	var fc *github.RepositoryContent
	err := g.call(ctx, "read "+path+" at "+ref, g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		fc, _, resp, err = g.c.Repositories.GetContents(ctx, g.owner, g.repo, path, &github.RepositoryContentGetOptions{Ref: ref})
		return resp, err
	})
	if err != nil {
		return nil, "", err
	}
	if fc == nil {
		return nil, "", fmt.Errorf("GitHub read %s in %s: not a file", path, g.project())
	}
	s, err := fc.GetContent()
	return []byte(s), fc.GetSHA(), err
}

// branchFrom makes sure a branch exists, created from the base branch's head.
func (g *GitHub) branchFrom(ctx context.Context, branch string) error {
	var base *github.Reference
	if err := g.call(ctx, "read branch "+g.base, g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		base, resp, err = g.c.Git.GetRef(ctx, g.owner, g.repo, "heads/"+g.base)
		return resp, err
	}); err != nil {
		return err
	}
	err := g.call(ctx, "create branch "+branch, g.project(), func() (*github.Response, error) {
		_, resp, err := g.c.Git.CreateRef(ctx, g.owner, g.repo, &github.Reference{Ref: github.String("refs/heads/" + branch), Object: &github.GitObject{SHA: base.Object.SHA}})
		return resp, err
	})
	if err != nil && isStatus(err, http.StatusUnprocessableEntity) {
		return nil // the branch exists: a retried call finds its own branch
	}
	return err
}

// writeFile commits content to path on branch, unless it already holds it.
func (g *GitHub) writeFile(ctx context.Context, branch, path, message string, content []byte) (string, bool, error) {
	old, sha, err := g.file(ctx, path, branch)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return "", false, err
	}
	if err == nil && string(old) == string(content) {
		head, err := g.head(ctx, branch)
		return head, false, err
	}
	opts := &github.RepositoryContentFileOptions{Message: github.String(message), Content: content, Branch: github.String(branch)}
	if sha != "" {
		opts.SHA = github.String(sha)
	}
	var res *github.RepositoryContentResponse
	tried, landed := false, false
	err = g.call(ctx, "commit "+path+" to "+branch, g.project(), func() (*github.Response, error) {
		if tried {
			// The last write may have landed though its answer was lost (a 5xx from a
			// proxy): look before writing again, or a second write would fail on the
			// stale sha, or commit twice.
			cur, curSHA, err := g.file(ctx, path, branch)
			switch {
			case err == nil && string(cur) == string(content):
				landed = true
				return nil, nil
			case err == nil:
				opts.SHA = github.String(curSHA)
			case !isStatus(err, http.StatusNotFound):
				return nil, err
			}
		}
		tried = true
		var resp *github.Response
		var err error
		res, resp, err = g.c.Repositories.UpdateFile(ctx, g.owner, g.repo, path, opts)
		return resp, err
	})
	if err != nil {
		return "", false, err
	}
	if landed {
		head, err := g.head(ctx, branch)
		return head, true, err
	}
	return res.Commit.GetSHA(), true, nil
}

// head returns the commit a branch points at.
func (g *GitHub) head(ctx context.Context, branch string) (string, error) {
	var ref *github.Reference
	err := g.call(ctx, "read branch "+branch, g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		ref, resp, err = g.c.Git.GetRef(ctx, g.owner, g.repo, "heads/"+branch)
		return resp, err
	})
	if err != nil {
		return "", err
	}
	return ref.GetObject().GetSHA(), nil
}

// PullRequest is an open (or merged) pull request.
type PullRequest struct {
	Number  int    `json:"number"`
	URL     string `json:"url"`
	Branch  string `json:"branch"`
	Commit  string `json:"commit"` // head of the branch: the bumped Dockerfile's revision
	Created bool   `json:"created"`
	Merged  bool   `json:"merged"`
}

// openPullRequest finds the open pull request from branch, or opens one.
func (g *GitHub) openPullRequest(ctx context.Context, branch, title, body string) (PullRequest, error) {
	var prs []*github.PullRequest
	if err := g.call(ctx, "find pull request from "+branch, g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		prs, resp, err = g.c.PullRequests.List(ctx, g.owner, g.repo, &github.PullRequestListOptions{State: "open", Head: g.owner + ":" + branch, Base: g.base})
		return resp, err
	}); err != nil {
		return PullRequest{}, err
	}
	if len(prs) > 0 {
		return PullRequest{Number: prs[0].GetNumber(), URL: prs[0].GetHTMLURL(), Branch: branch}, nil
	}
	var pr *github.PullRequest
	tried := false
	if err := g.call(ctx, "open pull request from "+branch, g.project(), func() (*github.Response, error) {
		if tried {
			// A lost answer may hide an opened pull request: look for it first.
			open, resp, err := g.c.PullRequests.List(ctx, g.owner, g.repo, &github.PullRequestListOptions{State: "open", Head: g.owner + ":" + branch, Base: g.base})
			if err != nil {
				return resp, err
			}
			if len(open) > 0 {
				pr = open[0]
				return nil, nil
			}
		}
		tried = true
		var resp *github.Response
		var err error
		pr, resp, err = g.c.PullRequests.Create(ctx, g.owner, g.repo, &github.NewPullRequest{Title: github.String(title), Head: github.String(branch), Base: github.String(g.base), Body: github.String(body)})
		return resp, err
	}); err != nil {
		return PullRequest{}, err
	}
	return PullRequest{Number: pr.GetNumber(), URL: pr.GetHTMLURL(), Branch: branch, Created: true}, nil
}

var branchUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// BumpBranch is the branch of a Dockerfile bump, named after the tags.
func BumpBranch(d release.DriverSet) string {
	return "dgpu-release/bump-" + branchUnsafe.ReplaceAllString(d.I915Tag+"-"+d.FirmwareTag+"-"+d.DriverVersion, "_")
}

// BumpDockerfile opens (or finds) the pull request that pins the driver set in the Dockerfile.
func (g *GitHub) BumpDockerfile(ctx context.Context, d release.DriverSet) (PullRequest, error) {
	if err := d.Validate(""); err != nil {
		return PullRequest{}, err
	}
	branch := BumpBranch(d)
	if err := g.branchFrom(ctx, branch); err != nil {
		return PullRequest{}, err
	}
	old, _, err := g.file(ctx, docker.DriverDockerfilePath, branch)
	if err != nil {
		return PullRequest{}, err
	}
	bumped, err := docker.PinDriver(old, d.I915Tag, d.FirmwareTag, d.DriverVersion)
	if err != nil {
		return PullRequest{}, fmt.Errorf("bump %s in %s: %w", docker.DriverDockerfilePath, g.project(), err)
	}
	msg := fmt.Sprintf("Bump the driver to %s (i915 %s, firmware %s)", d.DriverVersion, d.I915Tag, d.FirmwareTag)
	commit, _, err := g.writeFile(ctx, branch, docker.DriverDockerfilePath, msg, bumped)
	if err != nil {
		return PullRequest{}, err
	}
	pr, err := g.openPullRequest(ctx, branch, msg, "Opened by dgpu-release: the driver repositories published new tags. Once merged, every supported kernel is rebuilt.\n\n"+MarkerComment("bump/"+branch))
	pr.Commit = commit
	return pr, err
}

// PullRequestMerged reports whether the pull request is merged.
func (g *GitHub) PullRequestMerged(ctx context.Context, number int) (bool, error) {
	var merged bool
	err := g.call(ctx, fmt.Sprintf("read pull request #%d", number), g.project(), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		merged, resp, err = g.c.PullRequests.IsMerged(ctx, g.owner, g.repo, number)
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return resp, nil // GitHub answers 404 for "not merged"
		}
		return resp, err
	})
	return merged, err
}

// UpdateTable upserts the row in release/README.md, by pull request or by commit.
func (g *GitHub) UpdateTable(ctx context.Context, row release.Row, message string) (TableUpdate, error) {
	branch := g.base
	if g.tablePR {
		branch = "dgpu-release/table-" + branchUnsafe.ReplaceAllString(row.Image[strings.LastIndex(row.Image, ":")+1:], "_")
		if err := g.branchFrom(ctx, branch); err != nil {
			return TableUpdate{}, err
		}
	}
	old, _, err := g.file(ctx, release.TablePath, branch)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return TableUpdate{}, err
	}
	t, err := release.ParseTable(string(old))
	if err != nil {
		return TableUpdate{}, fmt.Errorf("release table in %s: %w", g.project(), err)
	}
	t.Upsert(row)
	sha, changed, err := g.writeFile(ctx, branch, release.TablePath, message, []byte(t.Render()))
	if err != nil {
		return TableUpdate{}, err
	}
	up := TableUpdate{Commit: sha, Changed: changed, URL: fmt.Sprintf("https://github.com/%s/commit/%s", g.project(), sha)}
	if g.tablePR {
		pr, err := g.openPullRequest(ctx, branch, message, "Release table update by dgpu-release.")
		if err != nil {
			return TableUpdate{}, err
		}
		up.URL = pr.URL
	}
	return up, nil
}

// findIssue looks for an open issue of ours with the marker in its body.
func (g *GitHub) findIssue(ctx context.Context, owner, name, marker string) (*github.Issue, error) {
	want := MarkerComment(marker)
	opts := &github.IssueListByRepoOptions{State: "open", Labels: []string{IssueLabel}, ListOptions: github.ListOptions{PerPage: 100}}
	for {
		var page []*github.Issue
		var resp *github.Response
		if err := g.call(ctx, "list issues", owner+"/"+name, func() (*github.Response, error) {
			var err error
			page, resp, err = g.c.Issues.ListByRepo(ctx, owner, name, opts)
			return resp, err
		}); err != nil {
			return nil, err
		}
		for _, is := range page {
			if !is.IsPullRequest() && strings.Contains(is.GetBody(), want) {
				return is, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return nil, nil
		}
		opts.Page = resp.NextPage
	}
}

// FileIssue opens an issue, or comments on the open one with the same marker.
func (g *GitHub) FileIssue(ctx context.Context, in Issue) (IssueRef, error) {
	if err := ValidateRepo("issue repo", in.Repo); err != nil {
		return IssueRef{}, err
	}
	owner, name, _ := strings.Cut(in.Repo, "/")
	existing, err := g.findIssue(ctx, owner, name, in.Marker)
	if err != nil {
		return IssueRef{}, err
	}
	if existing != nil {
		ref := IssueRef{Repo: in.Repo, Number: existing.GetNumber(), URL: existing.GetHTMLURL()}
		comment := "**" + in.Title + "**\n\n" + in.Body
		// A retried call (its first attempt's answer lost) finds its report already there.
		said, err := g.alreadySaid(ctx, owner, name, existing, in.Title, in.Body, comment)
		if err != nil || said {
			return ref, err
		}
		if err := g.comment(ctx, owner, name, existing.GetNumber(), comment); err != nil {
			return IssueRef{}, err
		}
		return ref, nil
	}
	var is *github.Issue
	labels := []string{IssueLabel}
	tried := false
	if err := g.call(ctx, "file issue", in.Repo, func() (*github.Response, error) {
		if tried {
			// A lost answer may hide a created issue: find it by its marker first.
			found, err := g.findIssue(ctx, owner, name, in.Marker)
			if err != nil {
				return nil, err
			}
			if found != nil {
				is = found
				return nil, nil
			}
		}
		tried = true
		var resp *github.Response
		var err error
		is, resp, err = g.c.Issues.Create(ctx, owner, name, &github.IssueRequest{Title: github.String(in.Title), Body: github.String(in.Body + "\n\n" + MarkerComment(in.Marker)), Labels: &labels})
		return resp, err
	}); err != nil {
		return IssueRef{}, err
	}
	return IssueRef{Repo: in.Repo, Number: is.GetNumber(), URL: is.GetHTMLURL(), Created: true}, nil
}

// alreadySaid reports whether an issue opened with this title and body, or has the comment.
func (g *GitHub) alreadySaid(ctx context.Context, owner, name string, is *github.Issue, title, body, comment string) (bool, error) {
	if is.GetTitle() == title && strings.Contains(is.GetBody(), body) {
		return true, nil
	}
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		var page []*github.IssueComment
		var resp *github.Response
		if err := g.call(ctx, fmt.Sprintf("list comments of #%d", is.GetNumber()), owner+"/"+name, func() (*github.Response, error) {
			var err error
			page, resp, err = g.c.Issues.ListComments(ctx, owner, name, is.GetNumber(), opts)
			return resp, err
		}); err != nil {
			return false, err
		}
		for _, c := range page {
			if c.GetBody() == comment {
				return true, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return false, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *GitHub) comment(ctx context.Context, owner, name string, number int, body string) error {
	return g.call(ctx, fmt.Sprintf("comment on #%d", number), owner+"/"+name, func() (*github.Response, error) {
		_, resp, err := g.c.Issues.CreateComment(ctx, owner, name, number, &github.IssueComment{Body: github.String(body)})
		return resp, err
	})
}

// Comment adds a comment to the open issue with the marker.
func (g *GitHub) Comment(ctx context.Context, repo, marker, body string) (IssueRef, error) {
	owner, name, _ := strings.Cut(repo, "/")
	is, err := g.findIssue(ctx, owner, name, marker)
	if err != nil {
		return IssueRef{}, err
	}
	if is == nil {
		return IssueRef{}, fmt.Errorf("GitHub comment in %s: no open issue with marker %q", repo, marker)
	}
	if err := g.comment(ctx, owner, name, is.GetNumber(), body); err != nil {
		return IssueRef{}, err
	}
	return IssueRef{Repo: repo, Number: is.GetNumber(), URL: is.GetHTMLURL()}, nil
}

// CloseIssue comments and closes the open issue with the marker; none is no error.
func (g *GitHub) CloseIssue(ctx context.Context, repo, marker, comment string) error {
	owner, name, _ := strings.Cut(repo, "/")
	is, err := g.findIssue(ctx, owner, name, marker)
	if err != nil || is == nil {
		return err
	}
	if err := g.comment(ctx, owner, name, is.GetNumber(), comment); err != nil {
		return err
	}
	return g.call(ctx, fmt.Sprintf("close #%d", is.GetNumber()), repo, func() (*github.Response, error) {
		_, resp, err := g.c.Issues.Edit(ctx, owner, name, is.GetNumber(), &github.IssueRequest{State: github.String("closed")})
		return resp, err
	})
}

// tagRE reads the work-week date the Intel GPU repositories put in their tags:
// I915_24WW30.4_803.75_... and 24WW20.5_881 are year 24, work week 30 (20), day 4 (5).
var tagRE = regexp.MustCompile(`(\d{2})WW(\d{2})\.(\d)`)

// NewestTag picks the newest tag by the work-week date in its name; tags without one
// are ignored. Ties go to the lexically greater tag.
func NewestTag(tags []string) (string, bool) {
	type k struct {
		key string
		tag string
	}
	var ks []k
	for _, t := range tags {
		if m := tagRE.FindStringSubmatch(t); m != nil {
			ks = append(ks, k{m[1] + m[2] + m[3], t})
		}
	}
	if len(ks) == 0 {
		return "", false
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].key != ks[j].key {
			return ks[i].key < ks[j].key
		}
		return ks[i].tag < ks[j].tag
	})
	return ks[len(ks)-1].tag, true
}

// LatestTag lists a repository's tags (all pages) and returns the newest by its scheme.
func (g *GitHub) LatestTag(ctx context.Context, repo string) (string, error) {
	if err := ValidateRepo("driver repo", repo); err != nil {
		return "", err
	}
	owner, name, _ := strings.Cut(repo, "/")
	var all []string
	opts := &github.ListOptions{PerPage: 100}
	for {
		var page []*github.RepositoryTag
		var resp *github.Response
		if err := g.call(ctx, "list tags", repo, func() (*github.Response, error) {
			var err error
			page, resp, err = g.c.Repositories.ListTags(ctx, owner, name, opts)
			return resp, err
		}); err != nil {
			return "", err
		}
		for _, t := range page {
			all = append(all, t.GetName())
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	t, ok := NewestTag(all)
	if !ok {
		return "", fmt.Errorf("GitHub list tags in %s: none of %d tags has a <yy>WW<ww>.<d> date", repo, len(all))
	}
	return t, nil
}
