// Package forge is where the project's code and conversations live: the Dockerfile at a
// revision, the release table, and issues. GitHub in production; a local git repository
// with issues as files in the embedded default.
package forge

import (
	"context"
	"fmt"
	"strings"

	"dgpu-release/internal/release"
)

// Issue to file. Marker is a hidden key (such as the workflow ID and step) that finds
// an open issue for the same release, so a retry comments instead of filing twice.
type Issue struct {
	Repo   string `json:"repo"` // owner/name
	Marker string `json:"marker"`
	Title  string `json:"title"`
	Body   string `json:"body"`
}

// IssueRef names a filed issue.
type IssueRef struct {
	Repo   string `json:"repo"`
	Number int    `json:"number"`
	URL    string `json:"url"`
	// Created is false when an open issue with the marker existed and was commented on.
	Created bool `json:"created"`
}

// TableUpdate says what a table update did.
type TableUpdate struct {
	Commit  string `json:"commit"`
	URL     string `json:"url"`
	Changed bool   `json:"changed"`
}

// Forge is the port the activities use.
type Forge interface {
	// Dockerfile returns docker/intel-dgpu-driver.Dockerfile at a revision and the commit it resolved to.
	Dockerfile(ctx context.Context, ref string) (content []byte, commit string, err error)
	// UpdateTable upserts a row of release/README.md; an identical row changes nothing.
	UpdateTable(ctx context.Context, row release.Row, message string) (TableUpdate, error)
	// FileIssue opens an issue, or comments on the open issue with the same marker.
	FileIssue(ctx context.Context, in Issue) (IssueRef, error)
	// Comment adds a comment to the open issue with the marker.
	Comment(ctx context.Context, repo, marker, body string) (IssueRef, error)
	// CloseIssue closes the open issue with the marker, with a last comment; no issue is no error.
	CloseIssue(ctx context.Context, repo, marker, comment string) error
}

// MarkerComment is how a marker is hidden in an issue body.
func MarkerComment(marker string) string {
	return "<!-- dgpu-release:" + strings.ReplaceAll(marker, "--", "- -") + " -->"
}

// ValidateRepo checks an owner/name.
func ValidateRepo(field, repo string) error {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.ContainsAny(repo, " \t\n") || strings.Contains(name, "/") {
		return &release.FieldError{Field: field, Value: repo, Accepted: "owner/name, such as intel/intel-data-center-gpu-driver-for-openshift"}
	}
	return nil
}

func errRepo(op, repo string, err error) error {
	return fmt.Errorf("%s in %s: %w", op, repo, err)
}
