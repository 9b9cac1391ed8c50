// Package tclient builds Temporal client options from the ecosystem's environment
// variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY), and
// knows where the embedded default keeps its state. It does not import the server.
package tclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"dgpu-release/internal/release"
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

// Accepted forms, quoted in errors.
const (
	FormAddress   = "host:port with no scheme, such as localhost:7233 or my-ns.a1b2c.tmprl.cloud:7233"
	FormNamespace = "a Temporal namespace name without spaces, such as default or my-ns.a1b2c"
	FormStateDir  = "a folder path (created when missing), such as ~/.local/state/dgpu-release"
	FormPort      = "a TCP port from 1 to 65535, or 0 for any free port"
)

// FromEnv returns client options for the configured Temporal service. Every variable that
// is set is checked, and every file it names is read, before anything connects: an error
// names the variable and the accepted form. Without TEMPORAL_ADDRESS the options are for
// the embedded default (the caller sets its address and namespace), and the namespace, TLS
// and API key variables, which describe another service, are not used.
func FromEnv(logger *slog.Logger) (client.Options, error) {
	o := client.Options{HostPort: os.Getenv(EnvAddress), Namespace: os.Getenv(EnvNamespace)}
	if logger != nil {
		o.Logger = sdklog.NewStructuredLogger(logger)
	}
	if o.HostPort == "" {
		o.Namespace = "default"
		return o, nil
	}
	var errs []error
	errs = append(errs, ValidateAddress(EnvAddress, o.HostPort))
	if o.Namespace == "" {
		o.Namespace = "default"
	} else if !nameRE.MatchString(o.Namespace) {
		errs = append(errs, &release.FieldError{Field: EnvNamespace, Value: o.Namespace, Accepted: FormNamespace + " (unset: default)"})
	}
	cert, key, ca, serverName := os.Getenv(EnvTLSCert), os.Getenv(EnvTLSKey), os.Getenv(EnvTLSCA), os.Getenv(EnvTLSServerName)
	if (cert == "") != (key == "") {
		only := EnvTLSCert
		if key != "" {
			only = EnvTLSKey
		}
		errs = append(errs, fmt.Errorf("%s and %s must be set together (paths to the PEM client certificate and its PEM key); only %s is set", EnvTLSCert, EnvTLSKey, only))
	}
	if serverName != "" && !nameRE.MatchString(serverName) {
		errs = append(errs, &release.FieldError{Field: EnvTLSServerName, Value: serverName, Accepted: "the host name the server's certificate names, such as temporal.example.com"})
	}
	apiKey := os.Getenv(EnvAPIKey)
	if apiKey != "" && strings.IndexFunc(apiKey, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		// The key is a secret: say what is wrong with it, never what it is.
		errs = append(errs, fmt.Errorf("%s holds a space, tab or line break (%d characters): accepted form is the API key alone, with no trailing newline", EnvAPIKey, len(apiKey)))
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	if cert != "" || ca != "" || serverName != "" || apiKey != "" {
		tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
		if cert != "" {
			certPEM, err1 := readPEM(EnvTLSCert, cert, "the path of a PEM client certificate file")
			keyPEM, err2 := readPEM(EnvTLSKey, key, "the path of the PEM private key file of "+EnvTLSCert)
			if err := errors.Join(err1, err2); err != nil {
				return o, err
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return o, fmt.Errorf("%s %s and %s %s are not a client certificate and its key: %v (accepted are a PEM certificate and the PEM private key that matches it)", EnvTLSCert, cert, EnvTLSKey, key, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		if ca != "" {
			pem, err := readPEM(EnvTLSCA, ca, "the path of a file of PEM CA certificates")
			if err != nil {
				return o, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, &release.FieldError{Field: EnvTLSCA, Value: ca, Accepted: "the path of a file of PEM CA certificates (this file holds none)"}
			}
			tc.RootCAs = pool
		}
		o.ConnectionOptions.TLS = tc
	}
	if apiKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(apiKey)
	}
	return o, nil
}

// nameRE is a namespace or host name: no spaces, no control characters, no scheme.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateAddress checks a Temporal frontend address: host:port, without a scheme.
func ValidateAddress(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.ContainsAny(addr, "/ \t\n") {
		return &release.FieldError{Field: field, Value: addr, Accepted: FormAddress}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return &release.FieldError{Field: field, Value: addr, Accepted: FormAddress + " (the port from 1 to 65535)"}
	}
	return nil
}

// ValidatePort checks a port flag of the embedded default.
func ValidatePort(field string, port int) error {
	if port < 0 || port > 65535 {
		return &release.FieldError{Field: field, Value: strconv.Itoa(port), Accepted: FormPort}
	}
	return nil
}

// ValidateStateDir checks the state folder before anything is written to it: it must be
// named, and be a folder when it exists. field names where the value came from (the flag,
// or DGPU_STATE_DIR when the flag was left out).
func ValidateStateDir(field, dir string) error {
	if strings.TrimSpace(dir) == "" {
		return &release.FieldError{Field: field, Value: dir, Accepted: FormStateDir}
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return &release.FieldError{Field: field, Value: dir, Accepted: FormStateDir + " (this is a file)"}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w (%v)", &release.FieldError{Field: field, Value: dir, Accepted: FormStateDir}, err)
	}
	return nil
}

// StateDirField names where a state folder came from, for errors: the flag when it was
// given, else DGPU_STATE_DIR when that is set.
func StateDirField(flag string, flagGiven bool) string {
	if !flagGiven && os.Getenv(EnvStateDir) != "" {
		return EnvStateDir
	}
	return flag
}

// readPEM reads a file a TLS variable names.
func readPEM(env, path, accepted string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", &release.FieldError{Field: env, Value: path, Accepted: accepted}, unwrapPath(err))
	}
	return b, nil
}

// unwrapPath drops the path from a file error (the message already shows it).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
