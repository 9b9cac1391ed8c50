package fakes_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-github/v57/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/fakes"
)

func gitHubClient(t *testing.T, h http.Handler, token string) *github.Client {
	t.Helper()
	c := github.NewClient(nil).WithAuthToken(token)
	u, err := url.Parse(serve(t, h) + "/")
	require.NoError(t, err)
	c.BaseURL = u
	return c
}

// The parts of the fake the forge's tests do not reach: merging, GitHub's refusals, and
// the side-effect readers.
func TestGitHubFakePullRequestLifecycle(t *testing.T) {
	ctx := context.Background()
	f := fakes.NewGitHub("tok")
	f.SetFile("o/r", "main", "README.md", "v1")
	c := gitHubClient(t, f, "tok")

	_, _, _, err := c.Repositories.GetContents(ctx, "o", "other", "README.md", nil)
	assert.Equal(t, http.StatusNotFound, err.(*github.ErrorResponse).Response.StatusCode, "unknown repositories do not exist")

	main, _, err := c.Git.GetRef(ctx, "o", "r", "heads/main")
	require.NoError(t, err)
	_, _, err = c.Git.CreateRef(ctx, "o", "r", &github.Reference{Ref: github.String("refs/heads/b"), Object: &github.GitObject{SHA: main.Object.SHA}})
	require.NoError(t, err)
	_, _, err = c.PullRequests.Create(ctx, "o", "r", &github.NewPullRequest{Title: github.String("t"), Head: github.String("b"), Base: github.String("main")})
	require.Error(t, err, "no commits between main and b")

	fc, _, _, err := c.Repositories.GetContents(ctx, "o", "r", "README.md", &github.RepositoryContentGetOptions{Ref: "b"})
	require.NoError(t, err)
	_, _, err = c.Repositories.UpdateFile(ctx, "o", "r", "README.md", &github.RepositoryContentFileOptions{Message: github.String("m"), Content: []byte("v2"), Branch: github.String("b")})
	assert.Equal(t, http.StatusUnprocessableEntity, err.(*github.ErrorResponse).Response.StatusCode, "an existing file needs its sha")
	res, _, err := c.Repositories.UpdateFile(ctx, "o", "r", "README.md", &github.RepositoryContentFileOptions{Message: github.String("m"), Content: []byte("v2"), Branch: github.String("b"), SHA: fc.SHA})
	require.NoError(t, err)
	_, _, err = c.Repositories.UpdateFile(ctx, "o", "r", "README.md", &github.RepositoryContentFileOptions{Message: github.String("m"), Content: []byte("v3"), Branch: github.String("b"), SHA: fc.SHA})
	assert.Equal(t, http.StatusConflict, err.(*github.ErrorResponse).Response.StatusCode, "a stale sha conflicts")

	pr, _, err := c.PullRequests.Create(ctx, "o", "r", &github.NewPullRequest{Title: github.String("t"), Head: github.String("b"), Base: github.String("main")})
	require.NoError(t, err)
	_, _, err = c.PullRequests.Create(ctx, "o", "r", &github.NewPullRequest{Title: github.String("t"), Head: github.String("b"), Base: github.String("main")})
	assert.Equal(t, http.StatusUnprocessableEntity, err.(*github.ErrorResponse).Response.StatusCode, "one open pull request per head")
	merged, _, err := c.PullRequests.IsMerged(ctx, "o", "r", pr.GetNumber())
	require.NoError(t, err)
	assert.False(t, merged)

	require.NoError(t, f.MergePullRequest("o/r", pr.GetNumber()))
	merged, _, err = c.PullRequests.IsMerged(ctx, "o", "r", pr.GetNumber())
	require.NoError(t, err)
	assert.True(t, merged)
	got, _ := f.File("o/r", "main", "README.md")
	assert.Equal(t, "v2", got, "the merge brings the branch's files to main")

	commits := f.Commits("o/r")
	require.Len(t, commits, 2, "the contents write and the merge; SetFile is not counted")
	assert.Equal(t, fakes.Commit{Repo: "o/r", Branch: "b", SHA: res.Commit.GetSHA(), Parent: main.Object.GetSHA(), Path: "README.md", Message: "m"}, commits[0])
	assert.Equal(t, f.Head("o/r", "main"), commits[1].SHA)
	prs := f.PullRequests("o/r")
	require.Len(t, prs, 1)
	assert.True(t, prs[0].Merged)
	assert.Equal(t, "closed", prs[0].State)
	assert.Equal(t, []string{"b", "main"}, f.Branches("o/r"))

	// The issue list includes pull requests, as GitHub's does; Issues() does not.
	is, _, err := c.Issues.Create(ctx, "o", "r", &github.IssueRequest{Title: github.String("bug"), Labels: &[]string{"x"}})
	require.NoError(t, err)
	assert.Equal(t, 2, is.GetNumber(), "issues and pull requests share numbers")
	all, _, err := c.Issues.ListByRepo(ctx, "o", "r", &github.IssueListByRepoOptions{State: "all"})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.False(t, all[0].IsPullRequest(), "newest first")
	assert.True(t, all[1].IsPullRequest())
	assert.Len(t, f.Issues(""), 1)

	_, _, err = gitHubClient(t, f, "other").Issues.Create(ctx, "o", "r", &github.IssueRequest{Title: github.String("x")})
	assert.Equal(t, http.StatusUnauthorized, err.(*github.ErrorResponse).Response.StatusCode)
	assert.Equal(t, []string{"tok", "other"}, f.Tokens())
	assert.Len(t, f.Issues("o/r"), 1, "a refused request has no side effect")
}

func TestCatalogFakeCountsDuplicatesAndKeys(t *testing.T) {
	f := fakes.NewCatalog("k", "p")
	url := serve(t, f)
	post := func(key, body string) int {
		req, _ := http.NewRequest(http.MethodPost, url+fakes.CatalogAPIPath+"images", strings.NewReader(body))
		req.Header.Set("X-API-KEY", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusCreated, post("k", `{"docker_image_digest":"sha256:aa"}`))
	assert.Equal(t, http.StatusCreated, post("k", `{"docker_image_digest":"sha256:aa"}`))
	assert.Equal(t, http.StatusUnauthorized, post("bad", `{"docker_image_digest":"sha256:bb"}`))
	assert.Len(t, f.ImagesByDigest("sha256:aa"), 2, "a second create is a visible duplicate")
	assert.Empty(t, f.ImagesByDigest("sha256:bb"))
	assert.Equal(t, []string{"k", "bad"}, f.APIKeys())
}
