package mesh

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeyFile(t *testing.T) {
	k32 := make([]byte, 32)
	for i := range k32 {
		k32[i] = byte(i)
	}
	tests := []struct {
		name    string
		content string
		want    []byte
		errHas  string // substring of the error; "" for none
	}{
		{"hex, 64 digits", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", k32, ""},
		{"hex, upper case, spaces", "  000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F \r\n", k32, ""},
		{"hex, 32 digits", "000102030405060708090a0b0c0d0e0f", k32[:16], ""},
		{"base64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", k32, ""},
		{"base64 unpadded", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", k32, ""},
		{"passphrase", "correct horse battery staple\n", []byte("correct horse battery staple"), ""},
		{"hex, too short", "000102030405060708090a0b0c0d0e", nil, "the hex key is 15 bytes, need at least 16"},
		{"base64, too short", "AAECAwQFBgcICQoLDA0O", nil, "the base64 key is 15 bytes"},
		{"passphrase, too short", "hunter2!\n", nil, "at least 16"},
		{"empty", "\n", nil, "raw key is 0 bytes, need at least 16"},
		{"too large", strings.Repeat("a", maxKeyFileSize+1), nil, "larger than"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := LoadKeyFile(path)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, path, tt.errHas)
				}
				return
			}
			if err != nil || !bytes.Equal(key, tt.want) {
				t.Fatalf("LoadKeyFile = % x, %v; want % x", key, err, tt.want)
			}
		})
	}
}

func TestLoadKeyFileMissing(t *testing.T) {
	_, err := LoadKeyFile(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	content := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o444, 0o622} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		key, err := LoadKeyFile(path)
		var insecure *InsecureKeyFileError
		if !errors.As(err, &insecure) || insecure.Mode.Perm() != mode || len(key) != 32 {
			t.Errorf("mode %04o: key %d bytes, err %v; want the key and an InsecureKeyFileError", mode, len(key), err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400, 0o700} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if key, err := LoadKeyFile(path); err != nil || len(key) != 32 {
			t.Errorf("mode %04o: key %d bytes, err %v", mode, len(key), err)
		}
	}
}
