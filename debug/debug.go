// Package debug renders the debug workload of a failed release: a namespace, a service
// account allowed the privileged security context constraint, and a privileged pod on
// the failing node that runs the failing image (or the Driver Toolkit image) with the
// host's /lib/modules and /sys mounted. The manifests are templates in manifests/.
package debug

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

//go:embed manifests/*.yaml
var manifests embed.FS

// Defaults for the debug namespace and service account.
const (
	DefaultNamespace      = "intel-dgpu-debug"
	DefaultServiceAccount = "intel-dgpu-debug"
)

// Spec is the debug workload of one failed release.
type Spec struct {
	WorkflowID     string
	Step           string
	Kernel         string
	Image          string // the failing image, or the Driver Toolkit image when nothing was built
	NodeName       string // the failing node; empty lets the scheduler choose
	Namespace      string
	ServiceAccount string
}

type view struct {
	Spec
	PodName      string
	ReleaseLabel string
}

var dns1123 = regexp.MustCompile(`[^a-z0-9-]+`)

// PodName is deterministic for a release, so a retried deploy finds its own pod.
func PodName(workflowID string) string {
	sum := sha256.Sum256([]byte(workflowID))
	base := strings.Trim(dns1123.ReplaceAllString(strings.ToLower(workflowID), "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	return strings.Trim("dgpu-debug-"+base, "-") + "-" + hex.EncodeToString(sum[:])[:8]
}

// Render returns the manifests as one multi-document YAML stream.
func Render(s Spec) ([]byte, error) {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.ServiceAccount == "" {
		s.ServiceAccount = DefaultServiceAccount
	}
	if s.Image == "" || s.WorkflowID == "" {
		return nil, fmt.Errorf("debug workload: image and workflow ID are required")
	}
	v := view{Spec: s, PodName: PodName(s.WorkflowID)}
	v.ReleaseLabel = strings.TrimPrefix(v.PodName, "dgpu-debug-")
	tmpl, err := template.New("debug").Funcs(template.FuncMap{"quote": strconv.Quote}).ParseFS(manifests, "manifests/*.yaml")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for i, name := range []string{"namespace.yaml", "rbac.yaml", "pod.yaml"} {
		if i > 0 {
			out.WriteString("---\n")
		}
		if err := tmpl.ExecuteTemplate(&out, name, v); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
	}
	return out.Bytes(), nil
}

// AttachCommand is what an engineer runs to get a shell in the debug pod.
func AttachCommand(s Spec) string {
	ns := s.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return fmt.Sprintf("oc rsh -n %s pod/%s", ns, PodName(s.WorkflowID))
}
