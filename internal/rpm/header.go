// Package rpm reads (and, for tests and the rehearsal base image, writes) RPM package
// databases: the header blobs that rpm keeps per installed package, in the SQLite
// database of RHEL 9 and UBI 9 (rpmdb.sqlite) or the BerkeleyDB of older releases
// (Packages, read with go-rpmdb's bdb reader).
//
// go-rpmdb's own SQLite reader registers the database/sql driver name "sqlite" through
// github.com/glebarez/go-sqlite, which the embedded Temporal server's modernc.org/sqlite
// registers too: linking both panics at start. So SQLite databases are read here with
// modernc.org/sqlite, and the header blobs of both formats are decoded here.
package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
)

// Header tags this package reads.
const (
	TagHeaderImmutable = 63
	TagName            = 1000
	TagVersion         = 1001
	TagRelease         = 1002
	TagEpoch           = 1003
	TagArch            = 1022
	TagFileSizes       = 1028
	TagFileModes       = 1030
	TagFileDigests     = 1035
	TagFileFlags       = 1037
	TagDirIndexes      = 1116
	TagBaseNames       = 1117
	TagDirNames        = 1118
)

// Header data types.
const (
	typeInt16       = 3
	typeInt32       = 4
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// FileConfig is RPMFILE_CONFIG: a %config file, which may be changed after install.
const FileConfig = 1 << 0

// File is a file a package owns.
type File struct {
	Path   string `json:"path"`
	Mode   uint16 `json:"mode"`
	Flags  int32  `json:"flags"`
	Size   int32  `json:"size"`
	Digest string `json:"digest,omitempty"`
}

// IsDir reports a directory entry.
func (f File) IsDir() bool { return f.Mode&0o170000 == 0o040000 }

// IsConfig reports a %config file.
func (f File) IsConfig() bool { return f.Flags&FileConfig != 0 }

// Package is an installed package.
type Package struct {
	Name    string `json:"name"`
	Epoch   int    `json:"epoch,omitempty"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch"`
	Files   []File `json:"files,omitempty"`
}

// NEVRA is name-[epoch:]version-release.arch.
func (p Package) NEVRA() string {
	e := ""
	if p.Epoch != 0 {
		e = strconv.Itoa(p.Epoch) + ":"
	}
	return fmt.Sprintf("%s-%s%s-%s.%s", p.Name, e, p.Version, p.Release, p.Arch)
}

type entryInfo struct {
	Tag    int32
	Type   uint32
	Offset int32
	Count  uint32
}

// maxHeader bounds a header blob, as rpm does (256 MiB of data, 64k entries).
const (
	maxEntries = 0xffff
	maxData    = 256 << 20
)

// ParseHeader decodes one header blob as rpm stores it in its database.
func ParseHeader(blob []byte) (Package, error) {
	if len(blob) < 8 {
		return Package{}, errors.New("rpm header: blob too short")
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > maxEntries || dl > maxData {
		return Package{}, fmt.Errorf("rpm header: %d entries, %d data bytes: out of range", il, dl)
	}
	dataStart := 8 + 16*int(il)
	if len(blob) < dataStart+int(dl) {
		return Package{}, fmt.Errorf("rpm header: blob of %d bytes is shorter than its %d entries and %d data bytes", len(blob), il, dl)
	}
	data := blob[dataStart : dataStart+int(dl)]
	var p Package
	var baseNames, dirNames, digests []string
	var dirIndexes, flags, sizes []int32
	var modes []uint16
	for i := 0; i < int(il); i++ {
		var e entryInfo
		if err := binary.Read(bytes.NewReader(blob[8+16*i:8+16*(i+1)]), binary.BigEndian, &e); err != nil {
			return Package{}, err
		}
		if e.Tag >= 61 && e.Tag <= 63 { // region tags
			continue
		}
		if e.Offset < 0 || int(e.Offset) > len(data) {
			return Package{}, fmt.Errorf("rpm header: tag %d points outside the data", e.Tag)
		}
		d := data[e.Offset:]
		var err error
		switch e.Tag {
		case TagName:
			p.Name, err = str(d, e)
		case TagVersion:
			p.Version, err = str(d, e)
		case TagRelease:
			p.Release, err = str(d, e)
		case TagArch:
			p.Arch, err = str(d, e)
		case TagEpoch:
			var v []int32
			if v, err = int32s(d, e); err == nil && len(v) > 0 {
				p.Epoch = int(v[0])
			}
		case TagBaseNames:
			baseNames, err = strs(d, e)
		case TagDirNames:
			dirNames, err = strs(d, e)
		case TagFileDigests:
			digests, err = strs(d, e)
		case TagDirIndexes:
			dirIndexes, err = int32s(d, e)
		case TagFileFlags:
			flags, err = int32s(d, e)
		case TagFileSizes:
			sizes, err = int32s(d, e)
		case TagFileModes:
			modes, err = int16s(d, e)
		}
		if err != nil {
			return Package{}, fmt.Errorf("rpm header tag %d: %w", e.Tag, err)
		}
	}
	if p.Name == "" {
		return Package{}, errors.New("rpm header: no package name")
	}
	if len(dirIndexes) != len(baseNames) {
		return Package{}, fmt.Errorf("rpm header of %s: %d base names but %d directory indexes", p.Name, len(baseNames), len(dirIndexes))
	}
	for i, b := range baseNames {
		di := int(dirIndexes[i])
		if di < 0 || di >= len(dirNames) {
			return Package{}, fmt.Errorf("rpm header of %s: directory index %d out of range", p.Name, di)
		}
		f := File{Path: path.Clean(dirNames[di] + b)}
		if i < len(modes) {
			f.Mode = modes[i]
		}
		if i < len(flags) {
			f.Flags = flags[i]
		}
		if i < len(sizes) {
			f.Size = sizes[i]
		}
		if i < len(digests) {
			f.Digest = digests[i]
		}
		p.Files = append(p.Files, f)
	}
	return p, nil
}

func str(d []byte, e entryInfo) (string, error) {
	if e.Type != typeString && e.Type != typeI18NString && e.Type != typeStringArray {
		return "", fmt.Errorf("type %d is not a string", e.Type)
	}
	i := bytes.IndexByte(d, 0)
	if i < 0 {
		return "", errors.New("unterminated string")
	}
	return string(d[:i]), nil
}

func strs(d []byte, e entryInfo) ([]string, error) {
	if e.Type != typeStringArray && e.Type != typeI18NString && e.Type != typeString {
		return nil, fmt.Errorf("type %d is not a string array", e.Type)
	}
	out := make([]string, 0, e.Count)
	for n := uint32(0); n < e.Count; n++ {
		i := bytes.IndexByte(d, 0)
		if i < 0 {
			return nil, errors.New("unterminated string")
		}
		out = append(out, string(d[:i]))
		d = d[i+1:]
	}
	return out, nil
}

func int32s(d []byte, e entryInfo) ([]int32, error) {
	if e.Type != typeInt32 {
		return nil, fmt.Errorf("type %d is not int32", e.Type)
	}
	if uint64(len(d)) < 4*uint64(e.Count) {
		return nil, errors.New("int32 array runs past the data")
	}
	out := make([]int32, e.Count)
	for i := range out {
		out[i] = int32(binary.BigEndian.Uint32(d[4*i:]))
	}
	return out, nil
}

func int16s(d []byte, e entryInfo) ([]uint16, error) {
	if e.Type != typeInt16 {
		return nil, fmt.Errorf("type %d is not int16", e.Type)
	}
	if uint64(len(d)) < 2*uint64(e.Count) {
		return nil, errors.New("int16 array runs past the data")
	}
	out := make([]uint16, e.Count)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(d[2*i:])
	}
	return out, nil
}

// EncodeHeader writes a package as a header blob in rpm's database layout (with the
// immutable region rpm adds), for tests and stand-in images.
func EncodeHeader(p Package) []byte {
	type ent struct {
		tag  int32
		typ  uint32
		cnt  uint32
		data []byte
	}
	cstr := func(s string) []byte { return append([]byte(s), 0) }
	cstrs := func(ss []string) []byte {
		var b []byte
		for _, s := range ss {
			b = append(b, cstr(s)...)
		}
		return b
	}
	i32 := func(v []int32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.BigEndian.PutUint32(b[4*i:], uint32(x))
		}
		return b
	}
	i16 := func(v []uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.BigEndian.PutUint16(b[2*i:], x)
		}
		return b
	}
	ents := []ent{
		{TagName, typeString, 1, cstr(p.Name)},
		{TagVersion, typeString, 1, cstr(p.Version)},
		{TagRelease, typeString, 1, cstr(p.Release)},
		{TagArch, typeString, 1, cstr(p.Arch)},
	}
	if p.Epoch != 0 {
		ents = append(ents, ent{TagEpoch, typeInt32, 1, i32([]int32{int32(p.Epoch)})})
	}
	if len(p.Files) > 0 {
		dirIdx := map[string]int32{}
		var dirs, bases, digests []string
		var idx, flags, sizes []int32
		var modes []uint16
		for _, f := range p.Files {
			dir, base := path.Split(f.Path)
			if _, ok := dirIdx[dir]; !ok {
				dirIdx[dir] = int32(len(dirs))
				dirs = append(dirs, dir)
			}
			bases = append(bases, base)
			idx = append(idx, dirIdx[dir])
			flags = append(flags, f.Flags)
			sizes = append(sizes, f.Size)
			modes = append(modes, f.Mode)
			digests = append(digests, f.Digest)
		}
		n := uint32(len(p.Files))
		ents = append(ents,
			ent{TagFileSizes, typeInt32, n, i32(sizes)},
			ent{TagFileModes, typeInt16, n, i16(modes)},
			ent{TagFileDigests, typeStringArray, n, cstrs(digests)},
			ent{TagFileFlags, typeInt32, n, i32(flags)},
			ent{TagDirIndexes, typeInt32, n, i32(idx)},
			ent{TagBaseNames, typeStringArray, n, cstrs(bases)},
			ent{TagDirNames, typeStringArray, uint32(len(dirs)), cstrs(dirs)},
		)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].tag < ents[j].tag })
	il := len(ents) + 1 // + the region tag
	var data []byte
	infos := make([]entryInfo, 0, il)
	for _, e := range ents {
		align := map[uint32]int{typeInt16: 2, typeInt32: 4}[e.typ]
		for align > 0 && len(data)%align != 0 {
			data = append(data, 0)
		}
		infos = append(infos, entryInfo{Tag: e.tag, Type: e.typ, Offset: int32(len(data)), Count: e.cnt})
		data = append(data, e.data...)
	}
	// The immutable region: a trailer entry at the end of the data that covers every entry.
	trailer := make([]byte, 16)
	binary.BigEndian.PutUint32(trailer[0:], TagHeaderImmutable)
	binary.BigEndian.PutUint32(trailer[4:], typeBin)
	binary.BigEndian.PutUint32(trailer[8:], uint32(int32(-16*il)))
	binary.BigEndian.PutUint32(trailer[12:], 16)
	region := entryInfo{Tag: TagHeaderImmutable, Type: typeBin, Offset: int32(len(data)), Count: 16}
	data = append(data, trailer...)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(il))
	_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
	_ = binary.Write(&b, binary.BigEndian, region)
	for _, in := range infos {
		_ = binary.Write(&b, binary.BigEndian, in)
	}
	b.Write(data)
	return b.Bytes()
}
