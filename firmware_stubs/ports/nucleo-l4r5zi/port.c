/* NUCLEO-L4R5ZI port, written from RM0432 register addresses (no HAL, no CMSIS):
 * system clock 120 MHz from MSI 4 MHz through the PLL (range 1 boost mode, 5 flash wait states),
 * LPUART1 on PG7 (TX) / PG8 (RX), AF8, clocked by HSI16 — the ST-LINK V3 virtual COM port —
 * SysTick as the tick counter and the DWT cycle counter for cycles (the link and timers: ../cortexm/stm32_port.c).
 * Compiles here; not yet run on a board (see README.md). */
#include <stdint.h>

#include "port.h"
#include "stm32_port.h"
#include "systick.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC 0x40021000u
#define RCC_CR REG(RCC + 0x00u)
#define RCC_CFGR REG(RCC + 0x08u)
#define RCC_PLLCFGR REG(RCC + 0x0Cu)
#define RCC_AHB2ENR REG(RCC + 0x4Cu)
#define RCC_APB1ENR1 REG(RCC + 0x58u)
#define RCC_APB1ENR2 REG(RCC + 0x5Cu)
#define RCC_CCIPR REG(RCC + 0x88u)
#define PWR 0x40007000u
#define PWR_CR2 REG(PWR + 0x04u)
#define PWR_CR5 REG(PWR + 0x80u)
#define FLASH_ACR REG(0x40022000u)
#define GPIOG 0x48001800u
#define GPIOG_MODER REG(GPIOG + 0x00u)
#define GPIOG_AFRL REG(GPIOG + 0x20u)
#define GPIOG_AFRH REG(GPIOG + 0x24u)
#define LPUART1 0x40008000u
#define LPUART_CR1 REG(LPUART1 + 0x00u)
#define LPUART_BRR REG(LPUART1 + 0x0Cu)

#define SYSCLK_HZ 120000000u
#define HSI16_HZ 16000000u
#define BAUD 115200u

const uint32_t stm32_uart_base = LPUART1;
const uint32_t stm32_sysclk_hz = SYSCLK_HZ;

static void clock_120mhz(void)
{
    RCC_APB1ENR1 |= 1u << 28;                      /* PWREN */
    PWR_CR5 &= ~(1u << 8);                         /* R1MODE = 0: range 1 boost */
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u;          /* 5 wait states */
    while ((FLASH_ACR & 0xFu) != 5u) {
    }
    RCC_PLLCFGR = (1u << 0)                        /* PLLSRC = MSI (4 MHz) */
                  | (0u << 4)                      /* PLLM = /1 */
                  | (60u << 8)                     /* PLLN = x60: VCO 240 MHz */
                  | (1u << 24)                     /* PLLREN */
                  | (0u << 25);                    /* PLLR = /2: 120 MHz */
    RCC_CR |= 1u << 24;                            /* PLLON */
    while (!(RCC_CR & (1u << 25))) {
    }
    RCC_CFGR = (RCC_CFGR & ~0xF0u) | (8u << 4);    /* AHB /2 during the switch (RM0432 6.2.9) */
    RCC_CFGR = (RCC_CFGR & ~0x3u) | 3u;            /* SW = PLL */
    while ((RCC_CFGR & 0xCu) != 0xCu) {
    }
    for (volatile int i = 0; i < 200; i++) {
    }
    RCC_CFGR &= ~0xF0u;                            /* AHB /1 */
}

static void lpuart_init(void)
{
    RCC_CR |= 1u << 8;                             /* HSION */
    while (!(RCC_CR & (1u << 10))) {
    }
    PWR_CR2 |= 1u << 9;                            /* IOSV: VDDIO2 valid, port G usable */
    RCC_AHB2ENR |= 1u << 6;                        /* GPIOGEN */
    RCC_APB1ENR2 |= 1u << 0;                       /* LPUART1EN */
    RCC_CCIPR = (RCC_CCIPR & ~(3u << 10)) | (2u << 10); /* LPUART1SEL = HSI16 */
    GPIOG_MODER = (GPIOG_MODER & ~((3u << 14) | (3u << 16))) | (2u << 14) | (2u << 16);
    GPIOG_AFRL = (GPIOG_AFRL & ~(0xFu << 28)) | (8u << 28);
    GPIOG_AFRH = (GPIOG_AFRH & ~0xFu) | 8u;
    LPUART_BRR = (uint32_t)(((uint64_t)HSI16_HZ * 256u + BAUD / 2u) / BAUD);
    LPUART_CR1 = (1u << 3) | (1u << 2) | 1u;       /* TE, RE, UE */
}

void port_init(void)
{
    clock_120mhz();
    lpuart_init();
    stm32_dwt_start(0);
    systick_start();
}

const char *port_board(void) { return "nucleo-l4r5zi"; }
