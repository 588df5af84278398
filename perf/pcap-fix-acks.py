#!/usr/bin/env python3
"""Rewrites a PCAP so every client-to-server ACK acknowledges the server's
SYN-ACK (ISN + 1): the generated fixtures carry arbitrary ACK numbers,
which make Suricata's stream engine drop segments (perf/et-open.sh).

usage: pcap-fix-acks.py IN.pcap OUT.pcap (Ethernet, IPv4, microsecond PCAP)
"""
import struct,sys
d=open(sys.argv[1],'rb').read()
gh=d[:24]; magic,=struct.unpack('<I',d[:4]); assert magic in (0xa1b2c3d4,0xa1b23c4d), hex(magic)
link=struct.unpack('<I',d[20:24])[0]
out=bytearray(gh); i=24; isn={}
while i<len(d):
    ts1,ts2,cl,ol=struct.unpack('<IIII',d[i:i+16]); p=bytearray(d[i+16:i+16+cl]); i+=16+cl
    off=14 if link==1 else 0
    if off==14 and p[12:14]==b'\x08\x00' and p[off+9]==6:
        ihl=(p[off]&15)*4; t=off+ihl
        src=bytes(p[off+12:off+16]); dst=bytes(p[off+16:off+20])
        sp,dp,seq,ack,_,fl=struct.unpack('!HHIIBB',p[t:t+14])
        if fl&0x12==0x12: isn[(dst,dp,src,sp)]=seq
        elif dp==80 and (src,sp,dst,dp) in isn and fl&0x10:
            p[t+8:t+12]=struct.pack('!I',(isn[(src,sp,dst,dp)]+1)&0xffffffff)
    out+=struct.pack('<IIII',ts1,ts2,len(p),ol)+p
open(sys.argv[2],'wb').write(out)
