package registry

import (
	"archive/tar"
	"bytes"
	"io"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one entry of a layer built in memory.
type File struct {
	Path    string // absolute path in the image, such as /licenses/LICENSE
	Mode    int64  // 0 means 0644 for files and 0755 for directories
	Content []byte
	Dir     bool
}

// epoch is the fixed modification time of assembled files, so the same inputs give the
// same digest.
var epoch = time.Unix(0, 0).UTC()

// Layer builds an uncompressed-tar layer from files; parent directories are added, and
// entries are sorted, so the result is reproducible.
func Layer(files []File) (v1.Layer, error) {
	all := map[string]File{}
	for _, f := range files {
		p := strings.TrimPrefix(f.Path, "/")
		all[p] = f
		for d := parentDir(p); d != ""; d = parentDir(d) {
			if _, ok := all[d]; !ok {
				all[d] = File{Path: d, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := all[n]
		h := &tar.Header{Name: n, ModTime: epoch, Mode: f.Mode, Uname: "root", Gname: "root"}
		if f.Dir {
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Content))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.Dir {
			if _, err := tw.Write(f.Content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func parentDir(p string) string {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

// Assemble makes an image from layers (bottom first) and a config.
func Assemble(layers []v1.Layer, cfg v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cf)
}
