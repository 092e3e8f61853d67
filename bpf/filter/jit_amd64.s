//go:build amd64 && linux

#include "textflag.h"

// func jitCall(entry uintptr, pkt unsafe.Pointer, capLen uint64, wireLen uint32, mem unsafe.Pointer) uint32
//
// Loads the registers the generated code expects (jit_amd64.go) and calls
// it. The code uses no stack beyond the return address the CALL pushes.
TEXT ·jitCall(SB), NOSPLIT, $0-44
	MOVQ entry+0(FP), R11
	MOVQ pkt+8(FP), SI
	MOVQ capLen+16(FP), DI
	MOVL wireLen+24(FP), R8
	MOVQ mem+32(FP), R9
	XORL AX, AX
	XORL CX, CX
	CALL R11
	MOVL AX, ret+40(FP)
	RET
