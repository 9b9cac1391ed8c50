package rpm

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/knqyf263/go-rpmdb/pkg/bdb"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// DatabasePaths are where rpm keeps its database in an image, newest layout first.
var DatabasePaths = []string{
	"usr/lib/sysimage/rpm/rpmdb.sqlite",
	"var/lib/rpm/rpmdb.sqlite",
	"var/lib/rpm/Packages",
}

var sqliteMagic = []byte("SQLite format 3\x00")

// ReadFile lists the packages of an rpm database file (SQLite or BerkeleyDB).
func ReadFile(path string) ([]Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 16)
	_, err = f.Read(head)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	if bytes.Equal(head, sqliteMagic) {
		return readSQLite(path)
	}
	return readBDB(path)
}

func readSQLite(path string) ([]Package, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT blob FROM Packages")
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	defer rows.Close()
	var out []Package
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
		p, err := ParseHeader(blob)
		if err != nil {
			return nil, fmt.Errorf("rpm database %s: %w", path, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func readBDB(path string) ([]Package, error) {
	db, err := bdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rpm database %s is neither SQLite nor BerkeleyDB: %w", path, err)
	}
	var out []Package
	for e := range db.Read() {
		if e.Err != nil {
			return nil, fmt.Errorf("rpm database %s: %w", path, e.Err)
		}
		p, err := ParseHeader(e.Value)
		if err != nil {
			return nil, fmt.Errorf("rpm database %s: %w", path, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// WriteSQLite writes packages as an rpm SQLite database (the Packages table rpm reads
// headers from), for tests and stand-in images. The file is created new.
func WriteSQLite(path string, pkgs []Package) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_ = os.Remove(path)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(DELETE)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"); err != nil {
		return err
	}
	for _, p := range pkgs {
		if _, err := db.Exec("INSERT INTO Packages (blob) VALUES (?)", EncodeHeader(p)); err != nil {
			return err
		}
	}
	return db.Close()
}

// SQLiteBytes returns WriteSQLite's file content.
func SQLiteBytes(pkgs []Package) ([]byte, error) {
	dir, err := os.MkdirTemp("", "rpmdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "rpmdb.sqlite")
	if err := WriteSQLite(p, pkgs); err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}
