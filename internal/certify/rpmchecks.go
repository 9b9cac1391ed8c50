package certify

import (
	"archive/tar"
	"context"
	"fmt"
	"sort"
	"strings"

	"dgpu-release/internal/rpm"
)

// Prohibited packages: names that start with a prefix, and exact names.
var (
	ProhibitedPrefixes = []string{"kernel", "grub", "kpatch"}
	ProhibitedNames    = []string{"kmod-kvdo", "linux-firmware"}
)

func prohibited(name string) bool {
	for _, n := range ProhibitedNames {
		if name == n {
			return true
		}
	}
	for _, p := range ProhibitedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func noRPMDB() Result {
	return Result{Error, "no rpm database in the image (looked for /" + strings.Join(rpm.DatabasePaths, ", /") + ")"}
}

type prohibitedPackages struct{}

func (prohibitedPackages) Name() string { return HasNoProhibitedPackages }
func (prohibitedPackages) Description() string {
	return "Checks to ensure that the image in use does not include prohibited packages, such as Red Hat Enterprise Linux (RHEL) kernel packages."
}
func (prohibitedPackages) Help() string {
	return "Remove any RHEL packages that are not distributable outside of UBI (kernel*, grub*, kpatch*, kmod-kvdo, linux-firmware)."
}
func (prohibitedPackages) Validate(_ context.Context, in *Inspection) Result {
	if !in.HasRPMDB() {
		return noRPMDB()
	}
	pkgs := in.PackagesAfter(len(in.Layers) - 1)
	var bad []string
	for _, p := range pkgs {
		if prohibited(p.Name) {
			bad = append(bad, p.NEVRA())
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return Result{Fail, "prohibited packages installed: " + strings.Join(bad, ", ")}
	}
	return Result{Pass, fmt.Sprintf("%d packages, none prohibited", len(pkgs))}
}

type modifiedFiles struct{}

// maxListed bounds the paths a failure lists.
const maxListed = 10

func (modifiedFiles) Name() string { return HasModifiedFiles }
func (modifiedFiles) Description() string {
	return "Checks that no files installed via RPM in the base Red Hat layer have been modified"
}
func (modifiedFiles) Help() string {
	return "Do not modify files installed by an RPM in an earlier layer; update or reinstall the package with the package manager instead."
}

// Validate compares each layer's changed paths with the files owned by packages installed
// in the layers below it. Not counted: directories, %config files, the rpm database,
// deletions, and files of a package that the same layer updated or reinstalled (its
// version-release or the package set changed through rpm).
func (modifiedFiles) Validate(_ context.Context, in *Inspection) Result {
	if !in.HasRPMDB() {
		return noRPMDB()
	}
	var found []string
	total := 0
	for i := 1; i < len(in.Layers); i++ {
		prev := in.PackagesAfter(i - 1)
		if len(prev) == 0 {
			continue
		}
		cur := map[string]bool{}
		for _, p := range in.PackagesAfter(i) {
			cur[p.NEVRA()] = true
		}
		owned := map[string]struct {
			nevra string
			file  rpm.File
		}{}
		for _, p := range prev {
			for _, f := range p.Files {
				owned[strings.TrimPrefix(f.Path, "/")] = struct {
					nevra string
					file  rpm.File
				}{p.NEVRA(), f}
			}
		}
		for _, e := range in.Layers[i].Entries {
			if e.Whiteout || e.Opaque || e.Type == tar.TypeDir || rpmDBRank(e.Path) >= 0 || strings.HasPrefix(e.Path, "var/lib/rpm/") || strings.HasPrefix(e.Path, "usr/lib/sysimage/rpm/") {
				continue
			}
			o, ok := owned[e.Path]
			if !ok || o.file.IsDir() || o.file.IsConfig() || !cur[o.nevra] {
				continue
			}
			total++
			if len(found) < maxListed {
				found = append(found, fmt.Sprintf("/%s (%s) in layer %d", e.Path, o.nevra, i+1))
			}
		}
	}
	if total > 0 {
		more := ""
		if total > len(found) {
			more = fmt.Sprintf(" and %d more", total-len(found))
		}
		return Result{Fail, "files installed by rpm in an earlier layer are modified: " + strings.Join(found, ", ") + more}
	}
	return Result{Pass, "no file owned by an rpm of an earlier layer is modified"}
}
