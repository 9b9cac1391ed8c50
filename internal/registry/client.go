package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Client reads and writes images in OCI registries. Credentials come from the docker
// config and credential helpers (go-containerregistry's default keychain), never from
// workflow inputs. Loopback registries are spoken to over plain HTTP.
type Client struct {
	keychain  authn.Keychain
	transport http.RoundTripper
}

// DefaultResponseTimeout bounds the wait for a registry's response headers once a
// request is sent (a blob's body then streams for as long as it takes), so that a
// registry that accepts a connection and never answers fails the call, to be retried,
// instead of hanging the step until its start-to-close timeout.
const DefaultResponseTimeout = 2 * time.Minute

// NewClient returns a client with the default keychain.
func NewClient() *Client {
	return NewClientWithTimeout(DefaultResponseTimeout)
}

// NewClientWithTimeout returns a client that waits at most d for response headers.
func NewClientWithTimeout(d time.Duration) *Client {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = d
	return &Client{keychain: authn.DefaultKeychain, transport: t}
}

func (c *Client) options(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain), remote.WithTransport(c.transport)}
}

// ErrTagConflict is returned when a tag already names a different digest.
var ErrTagConflict = errors.New("tag conflict")

// Digest returns the digest a reference names, or ok=false when it does not exist.
func (c *Client) Digest(ctx context.Context, ref string) (digest string, ok bool, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", false, fmt.Errorf("image reference %q: %w", ref, err)
	}
	desc, err := remote.Head(r, c.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("look up %s: %w", ref, err)
	}
	return desc.Digest.String(), true, nil
}

// Image fetches an image's manifest and config (layers are read lazily).
func (c *Client) Image(ctx context.Context, ref string) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	img, err := remote.Image(r, c.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", ref, err)
	}
	return img, nil
}

// Push writes an image under a tag and returns its digest.
func (c *Client) Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, c.options(ctx)...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// Tags lists the tags of a repository.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	r, err := name.NewRepository(repo)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, err)
	}
	tags, err := remote.List(r, c.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

// CopyResult says what a copy did.
type CopyResult struct {
	Digest string `json:"digest"`
	// AlreadyPresent is true when the tag already named this digest: nothing was written.
	AlreadyPresent bool `json:"already_present"`
}

// Copy copies the image (or index) at src, which must be a digest reference, to dstRepo
// under tag. Blobs the target already has are not sent again; blobs in another
// repository of the same registry are mounted. An existing tag with the same digest is
// a no-op success; one with a different digest is ErrTagConflict and nothing is written.
func (c *Client) Copy(ctx context.Context, src, dstRepo, tag string) (CopyResult, error) {
	srcRef, err := name.NewDigest(src)
	if err != nil {
		return CopyResult{}, fmt.Errorf("source %q must be an image reference by digest (repo@sha256:...): %w", src, err)
	}
	dst, err := name.NewTag(dstRepo + ":" + tag)
	if err != nil {
		return CopyResult{}, fmt.Errorf("target %s:%s: %w", dstRepo, tag, err)
	}
	want := srcRef.DigestStr()
	if desc, err := remote.Head(dst, c.options(ctx)...); err == nil {
		if desc.Digest.String() == want {
			return CopyResult{Digest: want, AlreadyPresent: true}, nil
		}
		return CopyResult{}, fmt.Errorf("%w: %s already names %s, not %s; nothing was changed", ErrTagConflict, dst, desc.Digest, want)
	} else if !isNotFound(err) {
		return CopyResult{}, fmt.Errorf("look up %s: %w", dst, err)
	}
	desc, err := remote.Get(srcRef, c.options(ctx)...)
	if err != nil {
		return CopyResult{}, fmt.Errorf("read %s: %w", src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return CopyResult{}, err
		}
		err = remote.WriteIndex(dst, idx, c.options(ctx)...)
		if err != nil {
			return CopyResult{}, fmt.Errorf("write %s: %w", dst, err)
		}
		return CopyResult{Digest: want}, nil
	}
	img, err := desc.Image()
	if err != nil {
		return CopyResult{}, err
	}
	if err := remote.Write(dst, img, c.options(ctx)...); err != nil {
		return CopyResult{}, fmt.Errorf("write %s: %w", dst, err)
	}
	return CopyResult{Digest: want}, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusNotFound
	}
	return false
}
