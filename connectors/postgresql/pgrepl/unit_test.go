package pgrepl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

func TestSlotLostClassification(t *testing.T) {
	for _, c := range []struct {
		err  error
		lost bool
	}{
		// PostgreSQL 13 to 15 (seen in TestSlotLost), and 16 and later.
		{&pgconn.PgError{Code: "55000", Message: `cannot read from logical replication slot "s"`,
			Detail: "This slot has been invalidated because it exceeded the maximum reserved size."}, true},
		{&pgconn.PgError{Code: "55000", Message: `can no longer get changes from replication slot "s"`,
			Detail: "This slot has been invalidated because it exceeded the maximum reserved size."}, true},
		{&pgconn.PgError{Code: "58P01", Message: `requested WAL segment 000000010000000000000003 has already been removed`}, true},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "55000", Message: `can no longer get changes from replication slot "s"`}), true},
		// Same SQLSTATE, other causes.
		{&pgconn.PgError{Code: "55000", Message: `logical decoding requires wal_level >= logical`}, false},
		{&pgconn.PgError{Code: "55000", Message: `cannot use physical replication slot for logical decoding`}, false},
		{&pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 42`}, false},
		{&pgconn.PgError{Code: "42704", Message: `replication slot "s" does not exist`}, false},
		{errors.New("cannot read from logical replication slot"), false},
	} {
		got := classify(c.err)
		if errors.Is(got, ErrSlotLost) != c.lost {
			t.Errorf("classify(%v) = %v, lost want %v", c.err, got, c.lost)
		}
		var pe *pgconn.PgError
		if errors.As(c.err, &pe) && !errors.As(got, &pe) {
			t.Errorf("classify(%v) lost the *PgError", c.err)
		}
	}
}

func TestForgedLengthsAreErrors(t *testing.T) {
	for _, msg := range [][]byte{
		[]byte("T]\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x02"),
		{'I', 0, 0, 0, 7, 'N', 0, 2, 't', 0x7f, 0xff, 0xff, 0xff, '1'},
		{'U', 0, 0, 0, 7, 'K', 0, 1, 't', 0xff, 0xff, 0xff, 0xff},
		{'D', 0, 0, 0, 7, 'K', 0xff, 0xff},
		{'I', 0, 0},
	} {
		s := &Stream{o: StreamOptions{MaxChanges: 10}, typeMap: pgtype.NewMap(), rels: map[uint32]*relation{}}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := s.decode(msg)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("decode(%q) = nil", msg)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("decode(%q) allocated %d bytes", msg, grew)
		}
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{"conn_1": true, "a": true, "": false, "Conn": false, "a-b": false,
		"a'b": false, "a b": false, "slot_63": true} {
		if got := checkName("slot", name) == nil; got != ok {
			t.Errorf("checkName(%q) ok = %v, want %v", name, got, ok)
		}
	}
	for name, ok := range map[string]bool{"00000003-00000002-1": true, "0000000A-0000001B-12": true,
		"": false, "3-2": false, "00000003-00000002-1'": false, "00000003-0000000g-1": false} {
		if got := snapshotRe.MatchString(name); got != ok {
			t.Errorf("snapshot %q ok = %v, want %v", name, got, ok)
		}
	}
}

// relationMsg builds a pgoutput Relation message for relation id with int4 columns, the first
// one the key.
func relationMsg(id uint32, cols ...string) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, "public\x00t\x00"...)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for i, c := range cols {
		flag := byte(0)
		if i == 0 {
			flag = 1
		}
		b = append(b, flag)
		b = append(b, c+"\x00"...)
		b = binary.BigEndian.AppendUint32(b, 23)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// insertMsg builds an Insert of text values ("" for NULL).
func insertMsg(id uint32, vals ...string) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, 'N')
	b = binary.BigEndian.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		if v == "" {
			b = append(b, 'n')
			continue
		}
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// FuzzDecode feeds arbitrary pgoutput messages to a stream that knows one relation: a server is
// not ours to trust, so a malformed message must be an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(insertMsg(7, "1", "2"))
	f.Add(insertMsg(7, "1"))
	f.Add(insertMsg(8, "1", ""))
	f.Add(relationMsg(9, "a", "b", "c"))
	f.Add([]byte{'B', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3})
	f.Add([]byte{'U', 0, 0, 0, 7, 'K', 0, 2, 't', 0, 0, 0, 1, '1', 'n', 'N', 0, 2, 'u', 'n'})
	f.Add([]byte{'D', 0, 0, 0, 7, 'O', 0, 9})
	f.Add([]byte{'T', 0, 0, 0, 2, 0, 0, 0, 0, 7, 0, 0, 0, 9})
	f.Add([]byte{'M', 1})
	// Forged counts and lengths: errors, not gigabyte allocations.
	f.Add([]byte("T]\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x02"))
	f.Add([]byte{'I', 0, 0, 0, 7, 'N', 0, 2, 't', 0x7f, 0xff, 0xff, 0xff, '1'})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Stream{o: StreamOptions{MaxChanges: 10}, typeMap: pgtype.NewMap(), rels: map[uint32]*relation{}}
		if err := s.decode(relationMsg(7, "id", "v")); err != nil {
			t.Fatal(err)
		}
		if err := s.decode(data); err != nil {
			return
		}
		for _, c := range s.pending {
			if c.Op != Truncate && c.Op != Delete && (len(c.Values) != len(c.Columns) || len(c.ValuesText) != len(c.Columns) || len(c.Unchanged) != len(c.Columns)) {
				t.Fatalf("change with %d columns, %d values: %+v", len(c.Columns), len(c.Values), c)
			}
			if len(c.Key) != len(c.KeyText) || (c.Key != nil && len(c.Key) != len(c.KeyColumns)) {
				t.Fatalf("key %d values for %d columns", len(c.Key), len(c.KeyColumns))
			}
		}
	})
}
