package fakes

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// RegistryProxy returns a reverse proxy to a registry at target ("host:port" for plain
// HTTP, or a URL), so Faults can be put in front of a real registry. Location headers
// that point at the target (upload sessions, redirects to blobs) are rewritten to point
// at the proxy, so the client keeps talking through it. A token service named in a
// WWW-Authenticate challenge is not proxied.
func RegistryProxy(target string) http.Handler {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "fakes.RegistryProxy: bad target "+target, http.StatusBadGateway)
		})
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			loc := resp.Header.Get("Location")
			if loc == "" {
				return nil
			}
			l, err := url.Parse(loc)
			if err != nil || l.Host != u.Host {
				return nil // relative, or elsewhere (such as blob storage): leave it
			}
			l.Scheme = resp.Request.Header.Get("X-Forwarded-Proto")
			l.Host = resp.Request.Header.Get("X-Forwarded-Host")
			resp.Header.Set("Location", l.String())
			return nil
		},
	}
}
