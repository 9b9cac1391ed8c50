package release

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// TablePath is where the release table lives in the project repository.
const TablePath = "release/README.md"

// TableHeader is the header row of the release table.
var TableHeader = []string{"Image", "Intel GPU Driver", "RHEL Version", "RHOCP Version"}

// Row is one released image in the release table.
type Row struct {
	// Image is the pull spec by tag, such as quay.io/intel/intel-dgpu-driver:1.2.3-5.14.0-427.13.1.el9_4.x86_64.
	Image       string `json:"image"`
	I915Tag     string `json:"i915_tag"`
	FirmwareTag string `json:"firmware_tag"`
	RHEL        string `json:"rhel"`
	OpenShift   string `json:"openshift"`
}

// Table is release/README.md: the prose around the table, and the rows.
type Table struct {
	Before string // everything before the table, verbatim
	After  string // everything after the table, verbatim
	Rows   []Row
}

// DefaultTablePreamble starts a release table file that does not exist yet.
const DefaultTablePreamble = `# Released driver images

Intel Data Center GPU driver container images for Red Hat OpenShift, one per RHCOS kernel,
loaded on GPU nodes by the Kernel Module Management (KMM) operator. This file is written by
dgpu-release; edit the text around the table freely, the rows are regenerated.

`

var driverCellRE = regexp.MustCompile("^i915 `([^`]+)`, firmware `([^`]+)`$")

// ParseTable reads release/README.md. An empty input gives the default preamble and no rows.
func ParseTable(text string) (Table, error) {
	if strings.TrimSpace(text) == "" {
		return Table{Before: DefaultTablePreamble}, nil
	}
	lines := strings.SplitAfter(text, "\n")
	start := -1
	for i, l := range lines {
		if cells, ok := splitRow(l); ok && equalFold(cells, TableHeader) {
			start = i
			break
		}
	}
	if start < 0 {
		before := text
		if !strings.HasSuffix(before, "\n") {
			before += "\n"
		}
		return Table{Before: before + "\n"}, nil
	}
	t := Table{Before: strings.Join(lines[:start], "")}
	i := start + 1
	if i < len(lines) {
		if cells, ok := splitRow(lines[i]); ok && isDelimiter(cells) {
			i++
		} else {
			return Table{}, fmt.Errorf("%s line %d: the header row must be followed by a |---| delimiter row", TablePath, i+1)
		}
	}
	for ; i < len(lines); i++ {
		cells, ok := splitRow(lines[i])
		if !ok {
			break
		}
		if len(cells) != len(TableHeader) {
			return Table{}, fmt.Errorf("%s line %d: a row needs %d cells (%s), found %d", TablePath, i+1, len(TableHeader), strings.Join(TableHeader, " | "), len(cells))
		}
		m := driverCellRE.FindStringSubmatch(cells[1])
		if m == nil {
			return Table{}, fmt.Errorf("%s line %d: the Intel GPU Driver cell %q must read: i915 `<tag>`, firmware `<tag>`", TablePath, i+1, cells[1])
		}
		t.Rows = append(t.Rows, Row{
			Image:       strings.Trim(cells[0], "`"),
			I915Tag:     m[1],
			FirmwareTag: m[2],
			RHEL:        cells[2],
			OpenShift:   cells[3],
		})
	}
	t.After = strings.Join(lines[i:], "")
	return t, nil
}

// Upsert adds the row, or replaces the row with the same image. It reports whether the table changed.
func (t *Table) Upsert(r Row) bool {
	for i, old := range t.Rows {
		if old.Image == r.Image {
			if old == r {
				return false
			}
			t.Rows[i] = r
			return true
		}
	}
	t.Rows = append(t.Rows, r)
	return true
}

// Render writes the table back, rows sorted (newest OpenShift first, then image) and unique.
func (t Table) Render() string {
	rows := dedupe(t.Rows)
	sort.SliceStable(rows, func(i, j int) bool {
		if c := compareVersions(rows[i].OpenShift, rows[j].OpenShift); c != 0 {
			return c > 0
		}
		return rows[i].Image < rows[j].Image
	})
	var b strings.Builder
	b.WriteString(t.Before)
	b.WriteString("| " + strings.Join(TableHeader, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(TableHeader)) + "|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | i915 `%s`, firmware `%s` | %s | %s |\n", r.Image, r.I915Tag, r.FirmwareTag, r.RHEL, r.OpenShift)
	}
	b.WriteString(t.After)
	return b.String()
}

func dedupe(rows []Row) []Row {
	seen := map[string]int{}
	var out []Row
	for _, r := range rows {
		if i, ok := seen[r.Image]; ok {
			out[i] = r // the later row wins
			continue
		}
		seen[r.Image] = len(out)
		out = append(out, r)
	}
	return out
}

func splitRow(line string) ([]string, bool) {
	l := strings.TrimSpace(line)
	if !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") || len(l) < 2 {
		return nil, false
	}
	parts := strings.Split(l[1:len(l)-1], "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, true
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func isDelimiter(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":-") != "" || !strings.Contains(c, "-") {
			return false
		}
	}
	return true
}

// compareVersions compares dotted numeric versions (4.16.3 > 4.9.10); a non-numeric part compares as text.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil && nx != ny:
			if nx < ny {
				return -1
			}
			return 1
		case (ex != nil || ey != nil) && x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}
