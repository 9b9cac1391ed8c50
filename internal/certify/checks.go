package certify

import (
	"archive/tar"
	"context"
	"fmt"
	"sort"
	"strings"
)

// Checks returns every check, by name.
func Checks(opts Options) map[string]Check {
	list := []Check{
		hasLicense{}, hasUniqueTag{}, layerCount{}, prohibitedPackages{}, requiredLabels{}, prohibitedLabels{}, runAsNonRoot{},
		modifiedFiles{}, basedOnUBI{source: opts.UBI}, prohibitedName{},
	}
	m := make(map[string]Check, len(list))
	for _, c := range list {
		m[c.Name()] = c
	}
	return m
}

// MaxLayers is preflight's limit for LayerCountAcceptable.
const MaxLayers = 40

// RequiredLabels are the labels HasRequiredLabel wants.
var RequiredLabels = []string{"name", "vendor", "version", "release", "summary", "description", "maintainer"}

type hasLicense struct{}

func (hasLicense) Name() string { return HasLicense }
func (hasLicense) Description() string {
	return "Checking if terms and conditions applicable to the software including open source licensing information are present."
}
func (hasLicense) Help() string {
	return "Create a directory named /licenses and include all relevant licensing and/or terms and conditions as text file(s) in that directory."
}
func (hasLicense) Validate(_ context.Context, in *Inspection) Result {
	if _, ok := in.Files["licenses"]; !ok {
		return Result{Fail, "/licenses does not exist in the image"}
	}
	var names []string
	for p, e := range in.Files {
		if strings.HasPrefix(p, "licenses/") && (e.Type == tar.TypeReg || e.Type == tar.TypeRegA) && e.Size > 0 {
			names = append(names, "/"+p)
		}
	}
	if len(names) == 0 {
		return Result{Fail, "/licenses holds no non-empty regular file"}
	}
	sort.Strings(names)
	return Result{Pass, fmt.Sprintf("%d license file(s), first %s", len(names), names[0])}
}

type hasUniqueTag struct{}

func (hasUniqueTag) Name() string { return HasUniqueTag }
func (hasUniqueTag) Description() string {
	return "Checking if container has a tag other than 'latest', so that the image can be uniquely identified."
}
func (hasUniqueTag) Help() string {
	return "Refer to a specific image tag other than 'latest'; push the image with a unique tag."
}
func (hasUniqueTag) Validate(_ context.Context, in *Inspection) Result {
	for _, t := range in.Tags {
		if t != "latest" {
			return Result{Pass, fmt.Sprintf("tag %q", t)}
		}
	}
	if len(in.Tags) == 0 {
		return Result{Fail, "the repository has no tags"}
	}
	return Result{Fail, "the only tag is 'latest'"}
}

type layerCount struct{}

func (layerCount) Name() string { return LayerCountAcceptable }
func (layerCount) Description() string {
	return fmt.Sprintf("Checking if container has less than %d layers. Too many layers within the container images can degrade container performance.", MaxLayers+1)
}
func (layerCount) Help() string {
	return fmt.Sprintf("Optimize the Dockerfile to minimize the number of layers. Each RUN, COPY, and ADD instruction creates a new layer; keep %d or fewer.", MaxLayers)
}
func (layerCount) Validate(_ context.Context, in *Inspection) Result {
	n := len(in.Layers)
	if n > MaxLayers {
		return Result{Fail, fmt.Sprintf("%d layers, more than %d", n, MaxLayers)}
	}
	return Result{Pass, fmt.Sprintf("%d layers", n)}
}

type requiredLabels struct{}

func (requiredLabels) Name() string { return HasRequiredLabel }
func (requiredLabels) Description() string {
	return "Checking if the required labels (" + strings.Join(RequiredLabels, ", ") + ") are present in the container metadata and that they do not violate Red Hat trademark."
}
func (requiredLabels) Help() string {
	return "Add the following labels to your Dockerfile or Containerfile: " + strings.Join(RequiredLabels, ", ")
}
func (requiredLabels) Validate(_ context.Context, in *Inspection) Result {
	labels := in.Config.Config.Labels
	var missing []string
	for _, l := range RequiredLabels {
		if strings.TrimSpace(labels[l]) == "" {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 {
		return Result{Fail, "missing or empty labels: " + strings.Join(missing, ", ")}
	}
	return Result{Pass, "all required labels are set"}
}

// containsRedHat reports a use of the Red Hat name.
func containsRedHat(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "red hat") || strings.Contains(l, "redhat") || strings.Contains(l, "red-hat")
}

type prohibitedLabels struct{}

// prohibitedLabelKeys are the labels that must not claim the Red Hat name.
var prohibitedLabelKeys = []string{"name", "vendor", "maintainer"}

func (prohibitedLabels) Name() string { return HasNoProhibitedLabels }
func (prohibitedLabels) Description() string {
	return "Checking if the labels (" + strings.Join(prohibitedLabelKeys, ", ") + ") contain any prohibited Red Hat references."
}
func (prohibitedLabels) Help() string {
	return "Remove the Red Hat name from the name, vendor and maintainer labels; the image is yours, not Red Hat's."
}
func (prohibitedLabels) Validate(_ context.Context, in *Inspection) Result {
	var bad []string
	for _, k := range prohibitedLabelKeys {
		if v := in.Config.Config.Labels[k]; containsRedHat(v) {
			bad = append(bad, fmt.Sprintf("%s=%q", k, v))
		}
	}
	if len(bad) > 0 {
		return Result{Fail, "prohibited Red Hat reference in " + strings.Join(bad, ", ")}
	}
	return Result{Pass, "no prohibited labels"}
}

type prohibitedName struct{}

func (prohibitedName) Name() string { return HasProhibitedContainerName }
func (prohibitedName) Description() string {
	return "Checking if the container name violates Red Hat trademark."
}
func (prohibitedName) Help() string {
	return "Rename the repository so that it does not contain the Red Hat name."
}
func (prohibitedName) Validate(_ context.Context, in *Inspection) Result {
	parts := strings.Split(in.Repository, "/")
	last := parts[len(parts)-1]
	if containsRedHat(last) {
		return Result{Fail, fmt.Sprintf("container name %q uses the Red Hat name", last)}
	}
	return Result{Pass, fmt.Sprintf("container name %q", last)}
}

type runAsNonRoot struct{}

func (runAsNonRoot) Name() string { return RunAsNonRoot }
func (runAsNonRoot) Description() string {
	return "Checking if container runs as the root user because a container that does not specify a non-root user will fail the automatic certification, and will be subject to a manual review before the container can be approved for publication."
}
func (runAsNonRoot) Help() string {
	return "Indicate a specific USER in the Dockerfile or Containerfile (a non-zero UID), or certify with the root-exception policy if the image must run as root."
}
func (runAsNonRoot) Validate(_ context.Context, in *Inspection) Result {
	u := strings.TrimSpace(in.Config.Config.User)
	user, _, _ := strings.Cut(u, ":")
	switch user {
	case "":
		return Result{Fail, "the image sets no USER, so it runs as root"}
	case "root", "0":
		return Result{Fail, fmt.Sprintf("USER %q is root", u)}
	}
	return Result{Pass, fmt.Sprintf("USER %q", u)}
}
