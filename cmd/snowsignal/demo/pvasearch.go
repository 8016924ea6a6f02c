package demo

import (
	"encoding/binary"
	"net/netip"
)

// PVAccess protocol constants for a search request (the pvAccess protocol
// specification, "Message header" and "searchRequest").
const (
	pvaMagic         = 0xca
	pvaVersion       = 2
	pvaFlagsLE       = 0x00 // application message, from a client, little-endian
	pvaCommandSearch = 0x03
	pvaHeaderLen     = 8
)

// pvaSearch returns the payload of a PVAccess search request for one
// channel, as pvget sends it by broadcast: little-endian, replies wanted at
// the unspecified address ("reply to the packet's source") and the client's
// port, over TCP. For "EP:TEMP" it is 53 bytes, laid out exactly like the
// search in testdata/vectors/epics-search-segA-capture-and-mesh.pcap.
func pvaSearch(seq uint32, replyPort uint16, cid uint32, channel string) []byte {
	b := make([]byte, pvaHeaderLen, 64)
	b[0], b[1], b[2], b[3] = pvaMagic, pvaVersion, pvaFlagsLE, pvaCommandSearch
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = append(b, 0, 0, 0, 0) // flags (none), 3 reserved bytes
	addr := netip.AddrFrom4([4]byte{}).As16()
	addr[10], addr[11] = 0xff, 0xff // ::ffff:0.0.0.0, as pvAccessCPP sends
	b = append(b, addr[:]...)
	b = binary.LittleEndian.AppendUint16(b, replyPort)
	b = append(b, 1, 3, 't', 'c', 'p') // one protocol, "tcp"
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, cid)
	b = append(b, byte(len(channel)))
	b = append(b, channel...)
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(b)-pvaHeaderLen))
	return b
}
