package fakes

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GitHub is a fake of GitHub's REST API for the calls go-github v57 makes for the forge:
// commits (sha media type or JSON), contents (read and create/update with the blob sha
// as precondition), git refs, pulls (list, create, get, merged?), issues (list by repo
// with state, labels and Link pagination, newest first; create; edit; comments), tags.
// Pull requests and issues share one number sequence per repository, and the issue list
// includes pull requests, as GitHub's does. Repositories exist once added (AddRepo,
// SetFile, SetTags); others answer 404. Each response carries the X-RateLimit headers.
//
// Mount it at the root of a server and point the client at the server URL ("/api/v3"
// in front of the paths, GitHub Enterprise style, is accepted too). Put Faults in front
// to inject errors and rate limits.
type GitHub struct {
	mu      sync.Mutex
	token   string
	repos   map[string]*ghRepo
	perPage int
	seq     int
	calls   []string
	tokens  []string
}

type ghRepo struct {
	name     string
	heads    map[string]string            // branch -> sha
	trees    map[string]map[string]string // commit sha -> path -> content
	commits  []Commit
	issues   []*ghIssue // issues and pull requests, by number-1
	tags     []string
	comments int
}

type ghIssue struct {
	Issue
	pull *PullRequest
}

// Issue is an issue as the fake holds it.
type Issue struct {
	Repo     string
	Number   int
	Title    string
	Body     string
	State    string // open or closed
	Labels   []string
	Comments []string // bodies, in order
	URL      string
}

// PullRequest is a pull request as the fake holds it.
type PullRequest struct {
	Repo    string
	Number  int
	Title   string
	Body    string
	Head    string // branch
	Base    string // branch
	HeadSHA string
	State   string // open or closed
	Merged  bool
	URL     string
}

// Commit is a commit made through the API (a contents write, or a merge).
type Commit struct {
	Repo    string
	Branch  string
	SHA     string
	Parent  string
	Path    string // the file written; empty for a merge
	Message string
}

// NewGitHub returns an empty fake that accepts the token (empty: any token).
func NewGitHub(token string) *GitHub {
	return &GitHub{token: token, repos: map[string]*ghRepo{}, perPage: 100}
}

// SetPageLimit caps per_page of list calls, so tests exercise pagination with few items
// (GitHub caps it at 100).
func (f *GitHub) SetPageLimit(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n > 0 {
		f.perPage = n
	}
}

func (f *GitHub) newSHA(seed string) string {
	f.seq++
	return fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint(seed, "\x00", f.seq))))
}

func (f *GitHub) repo(name string) *ghRepo {
	if r, ok := f.repos[name]; ok {
		return r
	}
	r := &ghRepo{name: name, heads: map[string]string{}, trees: map[string]map[string]string{}}
	sha := f.newSHA(name)
	r.heads["main"], r.trees[sha] = sha, map[string]string{}
	f.repos[name] = r
	return r
}

// AddRepo creates the repository ("owner/name") with an empty main branch.
func (f *GitHub) AddRepo(repo string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repo(repo)
}

// SetFile commits content to path on branch directly, as a push by someone else would
// (it is not listed by Commits), creating the repository and the branch (from main) as
// needed. It returns the new head.
func (f *GitHub) SetFile(repo, branch, path, content string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repo(repo)
	if _, ok := r.heads[branch]; !ok {
		r.heads[branch] = r.heads["main"]
	}
	return r.commit(f, branch, map[string]string{path: content})
}

// commit makes a new head on branch with changes applied.
func (r *ghRepo) commit(f *GitHub, branch string, changes map[string]string) string {
	files := map[string]string{}
	for k, v := range r.trees[r.heads[branch]] {
		files[k] = v
	}
	for k, v := range changes {
		files[k] = v
	}
	sha := f.newSHA(r.name + branch)
	r.trees[sha], r.heads[branch] = files, sha
	return sha
}

// SetTags sets the repository's tags, in the order GitHub lists them.
func (f *GitHub) SetTags(repo string, tags ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repo(repo).tags = append([]string(nil), tags...)
}

// MergePullRequest merges an open pull request: its branch's files land on the base
// branch in a merge commit, and it is closed as merged.
func (f *GitHub) MergePullRequest(repo string, number int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.repos[repo]
	if !ok || number < 1 || number > len(r.issues) || r.issues[number-1].pull == nil {
		return fmt.Errorf("fake GitHub: no pull request %s#%d", repo, number)
	}
	p := r.issues[number-1].pull
	if p.State != "open" {
		return fmt.Errorf("fake GitHub: pull request %s#%d is %s", repo, number, p.State)
	}
	parent := r.heads[p.Base]
	sha := r.commit(f, p.Base, r.trees[r.heads[p.Head]])
	r.commits = append(r.commits, Commit{Repo: repo, Branch: p.Base, SHA: sha, Parent: parent, Message: fmt.Sprintf("Merge pull request #%d from %s", number, p.Head)})
	p.State, p.Merged = "closed", true
	r.issues[number-1].State = "closed"
	return nil
}

// File returns the content of path at a branch or commit.
func (f *GitHub) File(repo, ref, path string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.repos[repo]
	if !ok {
		return "", false
	}
	files, ok := r.tree(ref)
	if !ok {
		return "", false
	}
	c, ok := files[path]
	return c, ok
}

// Head returns the head commit of a branch ("" when there is no such branch).
func (f *GitHub) Head(repo, branch string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.repos[repo]; ok {
		return r.heads[branch]
	}
	return ""
}

// Branches lists the repository's branches, sorted.
func (f *GitHub) Branches(repo string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if r, ok := f.repos[repo]; ok {
		for b := range r.heads {
			out = append(out, b)
		}
	}
	sort.Strings(out)
	return out
}

// Commits lists the commits made through the API (contents writes and merges), oldest
// first; repo "" lists all repositories'.
func (f *GitHub) Commits(repo string) []Commit {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Commit
	for _, name := range f.repoNames(repo) {
		out = append(out, f.repos[name].commits...)
	}
	return out
}

// Issues lists the issues (not pull requests) by number; repo "" lists all repositories'.
func (f *GitHub) Issues(repo string) []Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Issue
	for _, name := range f.repoNames(repo) {
		for _, is := range f.repos[name].issues {
			if is.pull == nil {
				c := is.Issue
				c.Labels = append([]string(nil), c.Labels...)
				c.Comments = append([]string(nil), c.Comments...)
				out = append(out, c)
			}
		}
	}
	return out
}

// PullRequests lists the pull requests by number; repo "" lists all repositories'.
func (f *GitHub) PullRequests(repo string) []PullRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PullRequest
	for _, name := range f.repoNames(repo) {
		for _, is := range f.repos[name].issues {
			if is.pull != nil {
				out = append(out, *is.pull)
			}
		}
	}
	return out
}

// Tokens lists the distinct tokens seen in Authorization headers, in order of first use.
func (f *GitHub) Tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...)
}

// Calls lists every request as "METHOD /path", in order.
func (f *GitHub) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *GitHub) repoNames(repo string) []string {
	if repo != "" {
		if _, ok := f.repos[repo]; ok {
			return []string{repo}
		}
		return nil
	}
	var out []string
	for n := range f.repos {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// tree resolves a branch or a commit sha ("" is main).
func (r *ghRepo) tree(ref string) (map[string]string, bool) {
	if ref == "" {
		ref = "main"
	}
	if sha, ok := r.heads[ref]; ok {
		ref = sha
	}
	t, ok := r.trees[ref]
	return t, ok
}

func blobSHA(content string) string {
	return fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprintf("blob %d\x00%s", len(content), content))))
}

func ghError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func (f *GitHub) paginate(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	if per > f.perPage {
		per = f.perPage
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	start, end := min((page-1)*per, len(items)), min(page*per, len(items))
	var links []string
	link := func(p int, rel string) {
		q.Set("page", strconv.Itoa(p))
		links = append(links, fmt.Sprintf(`<http://%s%s?%s>; rel="%s"`, r.Host, r.URL.Path, q.Encode(), rel))
	}
	last := max(1, (len(items)+per-1)/per)
	if page < last {
		link(page+1, "next")
		link(last, "last")
	}
	if page > 1 {
		link(1, "first")
		link(page-1, "prev")
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	writeJSON(w, http.StatusOK, append([]any{}, items[start:end]...))
}

func (is *ghIssue) json() map[string]any {
	labels := []map[string]string{}
	for _, l := range is.Labels {
		labels = append(labels, map[string]string{"name": l})
	}
	m := map[string]any{"number": is.Number, "state": is.State, "title": is.Title, "body": is.Body, "labels": labels, "comments": len(is.Comments), "html_url": is.URL}
	if is.pull != nil {
		m["pull_request"] = map[string]any{"html_url": is.pull.URL}
	}
	return m
}

func (p *PullRequest) json(owner string) map[string]any {
	return map[string]any{
		"number": p.Number, "state": p.State, "title": p.Title, "body": p.Body, "html_url": p.URL, "merged": p.Merged,
		"head": map[string]any{"ref": p.Head, "label": owner + ":" + p.Head, "sha": p.HeadSHA},
		"base": map[string]any{"ref": p.Base, "label": owner + ":" + p.Base},
	}
}

func (f *GitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	f.calls = append(f.calls, r.Method+" "+path)
	auth := r.Header.Get("Authorization")
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(auth, "Bearer "), "token "))
	if auth != "" && !contains(f.tokens, token) {
		f.tokens = append(f.tokens, token)
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "4999")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	switch {
	case f.token != "" && auth == "":
		ghError(w, http.StatusUnauthorized, "Requires authentication")
		return
	case f.token != "" && token != f.token:
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
	if len(parts) < 4 || parts[0] != "repos" {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	repo, ok := f.repos[parts[1]+"/"+parts[2]]
	if !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	f.serveRepo(w, r, repo, parts[1], parts[3])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func decode(r *http.Request, v any) bool {
	return json.NewDecoder(r.Body).Decode(v) == nil
}

func (f *GitHub) serveRepo(w http.ResponseWriter, r *http.Request, repo *ghRepo, owner, rest string) {
	q := r.URL.Query()
	number := func(prefix, suffix string) (*ghIssue, bool) {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rest, prefix), suffix))
		if err != nil || n < 1 || n > len(repo.issues) {
			return nil, false
		}
		return repo.issues[n-1], true
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case get && strings.HasPrefix(rest, "commits/"):
		ref := strings.TrimPrefix(rest, "commits/")
		sha := ref
		if s, ok := repo.heads[ref]; ok {
			sha = s
		}
		if _, ok := repo.trees[sha]; !ok {
			ghError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref)
			return
		}
		if strings.Contains(r.Header.Get("Accept"), "sha") {
			w.Header().Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, sha)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "commit": map[string]any{"message": ""}})

	case get && strings.HasPrefix(rest, "contents/"):
		p := strings.TrimPrefix(rest, "contents/")
		files, ok := repo.tree(q.Get("ref"))
		if !ok {
			ghError(w, http.StatusNotFound, "No commit found for the ref "+q.Get("ref"))
			return
		}
		content, ok := files[p]
		if !ok {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"type": "file", "encoding": "base64", "name": p[strings.LastIndex(p, "/")+1:], "path": p, "size": len(content), "content": base64.StdEncoding.EncodeToString([]byte(content)), "sha": blobSHA(content)})

	case r.Method == http.MethodPut && strings.HasPrefix(rest, "contents/"):
		p := strings.TrimPrefix(rest, "contents/")
		var body struct{ Message, Content, SHA, Branch string }
		if !decode(r, &body) || body.Message == "" {
			ghError(w, http.StatusUnprocessableEntity, "Invalid request.")
			return
		}
		if body.Branch == "" {
			body.Branch = "main"
		}
		parent, ok := repo.heads[body.Branch]
		if !ok {
			ghError(w, http.StatusNotFound, "Branch "+body.Branch+" not found")
			return
		}
		old, exists := repo.trees[parent][p]
		switch {
		case exists && body.SHA == "":
			ghError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"sha\" wasn't supplied.")
			return
		case exists && body.SHA != blobSHA(old):
			ghError(w, http.StatusConflict, p+" does not match "+body.SHA)
			return
		}
		content, err := base64.StdEncoding.DecodeString(body.Content)
		if err != nil {
			ghError(w, http.StatusUnprocessableEntity, "content is not valid Base64")
			return
		}
		sha := repo.commit(f, body.Branch, map[string]string{p: string(content)})
		repo.commits = append(repo.commits, Commit{Repo: repo.name, Branch: body.Branch, SHA: sha, Parent: parent, Path: p, Message: body.Message})
		status := http.StatusOK
		if !exists {
			status = http.StatusCreated
		}
		writeJSON(w, status, map[string]any{
			"content": map[string]any{"path": p, "sha": blobSHA(string(content))},
			"commit":  map[string]any{"sha": sha, "message": body.Message, "parents": []map[string]string{{"sha": parent}}},
		})

	case get && strings.HasPrefix(rest, "git/ref/heads/"):
		b := strings.TrimPrefix(rest, "git/ref/heads/")
		sha, ok := repo.heads[b]
		if !ok {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ref": "refs/heads/" + b, "object": map[string]string{"sha": sha, "type": "commit"}})

	case post && rest == "git/refs":
		var body struct{ Ref, SHA string }
		decode(r, &body)
		b, ok := strings.CutPrefix(body.Ref, "refs/heads/")
		switch {
		case !ok || b == "":
			ghError(w, http.StatusUnprocessableEntity, "Reference name is not valid")
			return
		case repo.trees[body.SHA] == nil:
			ghError(w, http.StatusUnprocessableEntity, "Object does not exist")
			return
		case repo.heads[b] != "":
			ghError(w, http.StatusUnprocessableEntity, "Reference already exists")
			return
		}
		repo.heads[b] = body.SHA
		writeJSON(w, http.StatusCreated, map[string]any{"ref": body.Ref, "object": map[string]string{"sha": body.SHA, "type": "commit"}})

	case get && rest == "pulls":
		state := q.Get("state")
		if state == "" {
			state = "open"
		}
		var out []any
		for _, is := range repo.issues {
			p := is.pull
			if p == nil || (state != "all" && p.State != state) ||
				(q.Get("head") != "" && q.Get("head") != owner+":"+p.Head) || (q.Get("base") != "" && q.Get("base") != p.Base) {
				continue
			}
			out = append(out, p.json(owner))
		}
		f.paginate(w, r, out)

	case post && rest == "pulls":
		var body struct{ Title, Head, Base, Body string }
		decode(r, &body)
		head := body.Head
		if o, b, ok := strings.Cut(head, ":"); ok && o == owner {
			head = b
		}
		headSHA, okHead := repo.heads[head]
		_, okBase := repo.heads[body.Base]
		switch {
		case body.Title == "" || !okHead || !okBase:
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "PullRequest", "code": "invalid"}}, "documentation_url": "https://docs.github.com/rest"})
			return
		case headSHA == repo.heads[body.Base]:
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "PullRequest", "code": "custom", "message": "No commits between " + body.Base + " and " + head}}})
			return
		}
		for _, is := range repo.issues {
			if p := is.pull; p != nil && p.State == "open" && p.Head == head && p.Base == body.Base {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for " + owner + ":" + head + "."}}})
				return
			}
		}
		n := len(repo.issues) + 1
		p := &PullRequest{Repo: repo.name, Number: n, Title: body.Title, Body: body.Body, Head: head, Base: body.Base, HeadSHA: headSHA, State: "open", URL: fmt.Sprintf("https://github.com/%s/pull/%d", repo.name, n)}
		repo.issues = append(repo.issues, &ghIssue{Issue: Issue{Repo: repo.name, Number: n, Title: body.Title, Body: body.Body, State: "open", URL: p.URL}, pull: p})
		writeJSON(w, http.StatusCreated, p.json(owner))

	case get && strings.HasPrefix(rest, "pulls/") && strings.HasSuffix(rest, "/merge"):
		is, ok := number("pulls/", "/merge")
		if !ok || is.pull == nil || !is.pull.Merged {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		w.WriteHeader(http.StatusNoContent)

	case get && strings.HasPrefix(rest, "pulls/"):
		is, ok := number("pulls/", "")
		if !ok || is.pull == nil {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, is.pull.json(owner))

	case get && rest == "issues":
		state := q.Get("state")
		if state == "" {
			state = "open"
		}
		var want []string
		if l := q.Get("labels"); l != "" {
			want = strings.Split(l, ",")
		}
		var out []any
		for _, is := range repo.issues {
			if (state == "all" || is.State == state) && hasAll(is.Labels, want) {
				out = append(out, is.json())
			}
		}
		if q.Get("direction") != "asc" { // newest first, as GitHub sorts by default
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
		}
		f.paginate(w, r, out)

	case post && rest == "issues":
		var body struct {
			Title, Body string
			Labels      []string
		}
		if !decode(r, &body) || body.Title == "" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		n := len(repo.issues) + 1
		is := &ghIssue{Issue: Issue{Repo: repo.name, Number: n, Title: body.Title, Body: body.Body, State: "open", Labels: body.Labels, URL: fmt.Sprintf("https://github.com/%s/issues/%d", repo.name, n)}}
		repo.issues = append(repo.issues, is)
		writeJSON(w, http.StatusCreated, is.json())

	case strings.HasPrefix(rest, "issues/") && strings.HasSuffix(rest, "/comments") && (get || post):
		is, ok := number("issues/", "/comments")
		if !ok {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		if get {
			var out []any
			for i, c := range is.Comments {
				out = append(out, map[string]any{"body": c, "id": i + 1})
			}
			f.paginate(w, r, out)
			return
		}
		var body struct{ Body string }
		if !decode(r, &body) || body.Body == "" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		is.Comments = append(is.Comments, body.Body)
		repo.comments++
		writeJSON(w, http.StatusCreated, map[string]any{"id": repo.comments, "body": body.Body, "html_url": fmt.Sprintf("%s#issuecomment-%d", is.URL, repo.comments)})

	case (get || r.Method == http.MethodPatch) && strings.HasPrefix(rest, "issues/"):
		is, ok := number("issues/", "")
		if !ok {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		if get {
			writeJSON(w, http.StatusOK, is.json())
			return
		}
		var body struct {
			Title, Body, State *string
			Labels             *[]string
		}
		decode(r, &body)
		if body.State != nil && *body.State != "open" && *body.State != "closed" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		if body.Title != nil {
			is.Title = *body.Title
		}
		if body.Body != nil {
			is.Issue.Body = *body.Body
		}
		if is.pull != nil {
			is.pull.Title, is.pull.Body = is.Title, is.Issue.Body
		}
		if body.Labels != nil {
			is.Labels = *body.Labels
		}
		if body.State != nil && !(is.pull != nil && is.pull.Merged) {
			is.State = *body.State
			if is.pull != nil {
				is.pull.State = *body.State
			}
		}
		writeJSON(w, http.StatusOK, is.json())

	case get && rest == "tags":
		var out []any
		for _, t := range repo.tags {
			out = append(out, map[string]any{"name": t, "commit": map[string]string{"sha": tagSHA(repo.name, t)}})
		}
		f.paginate(w, r, out)

	default:
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

func tagSHA(repo, tag string) string {
	return fmt.Sprintf("%x", sha1.Sum([]byte(repo+"\x00tag\x00"+tag)))
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !contains(have, strings.TrimSpace(w)) {
			return false
		}
	}
	return true
}
