// Package tclient builds Temporal client options from the ecosystem's environment
// variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY), and
// knows where the embedded default keeps its state. It does not import the server.
package tclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// Env names.
const (
	EnvAddress       = "TEMPORAL_ADDRESS"
	EnvNamespace     = "TEMPORAL_NAMESPACE"
	EnvTLSCert       = "TEMPORAL_TLS_CERT"
	EnvTLSKey        = "TEMPORAL_TLS_KEY"
	EnvTLSCA         = "TEMPORAL_TLS_CA"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvAPIKey        = "TEMPORAL_API_KEY"
	EnvStateDir      = "DGPU_STATE_DIR"
)

// Configured reports whether a Temporal address is set in the environment.
func Configured() bool { return os.Getenv(EnvAddress) != "" }

// FromEnv returns client options for the configured Temporal service.
func FromEnv(logger *slog.Logger) (client.Options, error) {
	o := client.Options{HostPort: os.Getenv(EnvAddress), Namespace: os.Getenv(EnvNamespace)}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if logger != nil {
		o.Logger = sdklog.NewStructuredLogger(logger)
	}
	cert, key, ca := os.Getenv(EnvTLSCert), os.Getenv(EnvTLSKey), os.Getenv(EnvTLSCA)
	if (cert == "") != (key == "") {
		return o, fmt.Errorf("%s and %s must be set together (paths to the client certificate and key)", EnvTLSCert, EnvTLSKey)
	}
	if cert != "" || ca != "" || os.Getenv(EnvAPIKey) != "" {
		tc := &tls.Config{ServerName: os.Getenv(EnvTLSServerName), MinVersion: tls.VersionTLS12}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return o, fmt.Errorf("%s/%s: %w", EnvTLSCert, EnvTLSKey, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return o, fmt.Errorf("%s: %w", EnvTLSCA, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("%s: %s holds no PEM certificate", EnvTLSCA, ca)
			}
			tc.RootCAs = pool
		}
		o.ConnectionOptions.TLS = tc
	}
	if k := os.Getenv(EnvAPIKey); k != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(k)
	}
	return o, nil
}

// DefaultStateDir is where the embedded default keeps its state: $DGPU_STATE_DIR, else
// $XDG_STATE_HOME/dgpu-release, else ~/.local/state/dgpu-release.
func DefaultStateDir() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dgpu-release")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dgpu-release"
	}
	return filepath.Join(home, ".local", "state", "dgpu-release")
}
