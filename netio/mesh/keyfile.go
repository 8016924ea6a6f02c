package mesh

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// maxKeyFileSize bounds what LoadKeyFile reads: a key file is a line, and a
// large file is a wrong path.
const maxKeyFileSize = 4096

// InsecureKeyFileError reports a key file that group or others may read or
// write. LoadKeyFile returns it together with a valid key: callers that
// treat every error as fatal refuse the file (fail closed); callers that
// want a warning only check for it with errors.As and go on.
//
// Docker Swarm mounts secrets with mode 0444 unless the service's secret
// entry sets mode: 0400, so expect this warning there.
type InsecureKeyFileError struct {
	Path string
	Mode fs.FileMode
}

// Error says which file, its mode, and how to fix it.
func (e *InsecureKeyFileError) Error() string {
	return fmt.Sprintf("mesh: key file %s has mode %04o: group or others may access it; chmod 600 it (or mode: 0400 for a Swarm secret)",
		e.Path, e.Mode.Perm())
}

// LoadKeyFile reads a shared mesh key from the file at path. Surrounding
// whitespace is trimmed, then the content is taken as:
//
//   - hex, when it is only hex digits, an even number of them (e.g. from
//     `openssl rand -hex 32`); base64 of a 16-byte or longer key is all hex
//     digits with negligible probability, so this reading wins;
//   - otherwise base64 (standard alphabet, padded or not), when it decodes
//     (e.g. from `openssl rand -base64 32`);
//   - otherwise the bytes themselves, a passphrase.
//
// The decoded key must be at least MinKeyLen (16) bytes; the error names the
// file and this rule. Every relay must be given the same file content.
//
// If group or others may read or write the file, LoadKeyFile returns the
// key AND an *InsecureKeyFileError; see there.
func LoadKeyFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mesh: key file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat() // of the file we read, not of whatever path names later
	if err != nil {
		return nil, fmt.Errorf("mesh: key file: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(fh, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("mesh: key file %s: %w", path, err)
	}
	if len(raw) > maxKeyFileSize {
		return nil, fmt.Errorf("mesh: key file %s: larger than %d bytes; a key file holds one key", path, maxKeyFileSize)
	}
	key, format := parseKey(raw)
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("mesh: key file %s: the %s key is %d bytes, need at least %d (e.g. `openssl rand -hex 32 > %s`)",
			path, format, len(key), MinKeyLen, path)
	}
	if st.Mode().Perm()&0o066 != 0 {
		return key, &InsecureKeyFileError{Path: path, Mode: st.Mode()}
	}
	return key, nil
}

// parseKey decodes the content of a key file and names the format it found.
func parseKey(raw []byte) (key []byte, format string) {
	s := bytes.TrimSpace(raw)
	if len(s) > 0 && len(s)%2 == 0 && isHex(s) {
		k := make([]byte, len(s)/2)
		if _, err := hex.Decode(k, s); err == nil {
			return k, "hex"
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		k := make([]byte, enc.DecodedLen(len(s)))
		if n, err := enc.Decode(k, s); err == nil && n > 0 {
			return k[:n], "base64"
		}
	}
	return bytes.Clone(s), "raw"
}

func isHex(s []byte) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
