/*++
 * NAME
 *	trivial 1
 * SUMMARY
 *	the cheapest possible program, linked statically
 * DESCRIPTION
 *	Built with gcc -static: exec'ing it measures what the kernel
 *	charges for fork/exec/exit with no dynamic loader, no libc
 *	start-up beyond the minimum. Part of the floor (bench/README.md).
 *--*/

int main(void)
{
	return 0;
}
