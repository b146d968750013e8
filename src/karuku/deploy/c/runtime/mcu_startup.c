/* Minimal Cortex-M start-up for the QEMU check (mps2-an386): FPU on, .data copied, .bss zeroed,
 * semihosting handles opened, then main(); exit() reports the status to the host. */
#include <stdint.h>
#include <stdlib.h>
extern int main(void);
extern void initialise_monitor_handles(void);
extern uint32_t __stack_top, __etext, __data_start__, __data_end__, __bss_start__, __bss_end__;

void Reset_Handler(void) {
    uint32_t *src = &__etext, *dst = &__data_start__;
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: enable the FPU before any float instruction */
    __asm volatile("dsb\n isb");
    while (dst < &__data_end__) *dst++ = *src++;
    for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    initialise_monitor_handles();
    exit(main());
}
void Default_Handler(void) { exit(99); }
void _init(void) {}
void _fini(void) {}

__attribute__((section(".isr_vector"), used)) void (*const karuku_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    Default_Handler};
