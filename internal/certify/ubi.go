package certify

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
)

// UBISource tells which of the given layer IDs (uncompressed diffIDs or compressed
// digests, "sha256:...") are top layers of certified UBI images.
type UBISource interface {
	CertifiedLayers(ctx context.Context, layerIDs []string) (matched []string, err error)
	// Describe names the source in results ("catalog API at ...", "list file ...").
	Describe() string
}

// ListFile is a UBISource read from a file: one layer ID per line, # starts a comment.
type ListFile struct {
	Path string
	// Note is shown with the source, such as a stand-in notice.
	Note string
}

// CertifiedLayers reads the file and intersects.
func (l ListFile) CertifiedLayers(_ context.Context, ids []string) ([]string, error) {
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, fmt.Errorf("certified UBI layer list: %w", err)
	}
	defer f.Close()
	known := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "sha256:") || len(line) != len("sha256:")+64 {
			return nil, fmt.Errorf("certified UBI layer list %s line %d: %q is not a sha256:<64 hex> layer ID", l.Path, n, line)
		}
		known[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		if known[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// Describe names the file.
func (l ListFile) Describe() string {
	if l.Note != "" {
		return "list file " + l.Path + " (" + l.Note + ")"
	}
	return "list file " + l.Path
}

type basedOnUBI struct{ source UBISource }

func (basedOnUBI) Name() string { return BasedOnUbi }
func (basedOnUBI) Description() string {
	return "Checking if the container's base image is based upon the Red Hat Universal Base Image (UBI)"
}
func (basedOnUBI) Help() string {
	return "Change the FROM directive in your Dockerfile or Containerfile, for the latest list of images and details refer to: https://catalog.redhat.com/software/base-images"
}
func (c basedOnUBI) Validate(ctx context.Context, in *Inspection) Result {
	if c.source == nil {
		return Result{Error, "no source of certified UBI layers is configured (the catalog API, or a list file)"}
	}
	var ids []string
	for _, l := range in.Layers {
		ids = append(ids, l.DiffID, l.Digest)
	}
	matched, err := c.source.CertifiedLayers(ctx, ids)
	if err != nil {
		return Result{Error, fmt.Sprintf("%s: %v", c.source.Describe(), err)}
	}
	if len(matched) == 0 {
		return Result{Fail, fmt.Sprintf("none of the %d layers is the top layer of a certified UBI image (%s)", len(in.Layers), c.source.Describe())}
	}
	return Result{Pass, fmt.Sprintf("layer %s is a certified UBI layer (%s)", matched[0], c.source.Describe())}
}
