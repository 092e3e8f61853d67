/* Smoke test: the header alone, in strict modes (C89 to C11) and as C++. */
#include <net/bpf.h>

int
main(void)
{
	static struct bpf_insn accept[] = { BPF_STMT(BPF_RET | BPF_K, 0xffffffffu) };
	struct bpf_program prog;

	prog.bf_len = 1;
	prog.bf_insns = accept;
	return prog.bf_len != 1 || sizeof(struct bpf_hdr) != 32;
}
