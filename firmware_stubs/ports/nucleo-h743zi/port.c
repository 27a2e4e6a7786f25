/* NUCLEO-H743ZI port, written from RM0433 register addresses (no HAL, no CMSIS):
 * LDO supply, voltage scale 0 (VOS1 + SYSCFG overdrive), system clock 480 MHz from HSI 64 MHz through PLL1
 * (/4 = 16 MHz in, x60 = 960 MHz VCO, /2 = 480 MHz), AXI/AHB 240 MHz, APBs 120 MHz, 4 flash wait states;
 * I- and D-cache on; USART3 on PD8 (TX) / PD9 (RX), AF7, clocked by HSI 64 MHz — the ST-LINK V3 virtual COM port —
 * SysTick as the tick counter and the DWT cycle counter for cycles (the link and timers: ../cortexm/stm32_port.c).
 * Compiles here; not yet run on a board (see README.md). */
#include <stdint.h>

#include "port.h"
#include "stm32_port.h"
#include "systick.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC 0x58024400u
#define RCC_CR REG(RCC + 0x000u)
#define RCC_CFGR REG(RCC + 0x010u)
#define RCC_D1CFGR REG(RCC + 0x018u)
#define RCC_D2CFGR REG(RCC + 0x01Cu)
#define RCC_D3CFGR REG(RCC + 0x020u)
#define RCC_PLLCKSELR REG(RCC + 0x028u)
#define RCC_PLLCFGR REG(RCC + 0x02Cu)
#define RCC_PLL1DIVR REG(RCC + 0x030u)
#define RCC_D2CCIP2R REG(RCC + 0x054u)
#define RCC_AHB4ENR REG(RCC + 0x0E0u)
#define RCC_APB1LENR REG(RCC + 0x0E8u)
#define RCC_APB4ENR REG(RCC + 0x0F4u)
#define PWR 0x58024800u
#define PWR_CSR1 REG(PWR + 0x04u)
#define PWR_CR3 REG(PWR + 0x0Cu)
#define PWR_D3CR REG(PWR + 0x18u)
#define SYSCFG_PWRCR REG(0x58000400u + 0x2Cu)
#define FLASH_ACR REG(0x52002000u)
#define GPIOD 0x58020C00u
#define GPIOD_MODER REG(GPIOD + 0x00u)
#define GPIOD_AFRH REG(GPIOD + 0x24u)
#define USART3 0x40004800u
#define USART_CR1 REG(USART3 + 0x00u)
#define USART_BRR REG(USART3 + 0x0Cu)
#define SCB_CCR REG(0xE000ED14u)
#define SCB_CCSIDR REG(0xE000ED80u)
#define SCB_CSSELR REG(0xE000ED84u)
#define SCB_ICIALLU REG(0xE000EF50u)
#define SCB_DCISW REG(0xE000EF60u)

#define SYSCLK_HZ 480000000u
#define HSI_HZ 64000000u
#define BAUD 115200u

const uint32_t stm32_uart_base = USART3;
const uint32_t stm32_sysclk_hz = SYSCLK_HZ;

static void barrier(void) { __asm volatile("dsb\n isb" ::: "memory"); }

static void caches_on(void)
{
    SCB_ICIALLU = 0u;                              /* invalidate, then enable the I-cache */
    barrier();
    SCB_CCR |= 1u << 17;
    barrier();
    SCB_CSSELR = 0u;                               /* level 1 data cache */
    barrier();
    uint32_t ccsidr = SCB_CCSIDR;
    for (uint32_t set = (ccsidr >> 13) & 0x7FFFu;; set--) {
        for (uint32_t way = (ccsidr >> 3) & 0x3FFu;; way--) {
            SCB_DCISW = ((set << 5) & 0x3FE0u) | ((way << 30) & 0xC0000000u);
            if (way == 0u) {
                break;
            }
        }
        if (set == 0u) {
            break;
        }
    }
    barrier();
    SCB_CCR |= 1u << 16;                           /* D-cache on (no DMA in this firmware) */
    barrier();
}

static void clock_480mhz(void)
{
    PWR_CR3 = (PWR_CR3 & ~0x7u) | (1u << 1);       /* LDOEN, no bypass: the supply config, written once */
    while (!(PWR_CSR1 & (1u << 13))) {             /* ACTVOSRDY */
    }
    PWR_D3CR = (PWR_D3CR & ~(3u << 14)) | (3u << 14); /* VOS1 */
    while (!(PWR_D3CR & (1u << 13))) {             /* VOSRDY */
    }
    RCC_APB4ENR |= 1u << 1;                        /* SYSCFGEN */
    SYSCFG_PWRCR |= 1u;                            /* ODEN: VOS0, needed above 400 MHz */
    while (!(PWR_D3CR & (1u << 13))) {
    }
    FLASH_ACR = (FLASH_ACR & ~0x3Fu) | (2u << 4) | 4u; /* WRHIGHFREQ = 2, LATENCY = 4 (AXI 240 MHz, VOS0) */
    while ((FLASH_ACR & 0xFu) != 4u) {
    }
    RCC_PLLCKSELR = (RCC_PLLCKSELR & ~((0x3Fu << 4) | 3u)) | (4u << 4); /* PLLSRC = HSI, DIVM1 = /4: 16 MHz */
    RCC_PLLCFGR = (RCC_PLLCFGR & ~0xFu) | (3u << 2)  /* PLL1RGE = 8-16 MHz, wide VCO, integer mode */
                  | (1u << 16);                    /* DIVP1EN */
    RCC_PLL1DIVR = (59u << 0)                      /* DIVN1 = x60: VCO 960 MHz */
                   | (1u << 9)                     /* DIVP1 = /2: 480 MHz */
                   | (1u << 16) | (1u << 24);      /* DIVQ1, DIVR1 = /2 (unused) */
    RCC_CR |= 1u << 24;                            /* PLL1ON */
    while (!(RCC_CR & (1u << 25))) {
    }
    RCC_D1CFGR = (8u << 0) | (4u << 4);            /* HPRE /2: AXI/AHB 240 MHz; D1PPRE /2: APB3 120 MHz */
    RCC_D2CFGR = (4u << 4) | (4u << 8);            /* D2PPRE1, D2PPRE2 /2: APB1, APB2 120 MHz */
    RCC_D3CFGR = 4u << 4;                          /* D3PPRE /2: APB4 120 MHz */
    RCC_CFGR = (RCC_CFGR & ~0x7u) | 3u;            /* SW = PLL1 */
    while ((RCC_CFGR & (7u << 3)) != (3u << 3)) {
    }
}

static void usart3_init(void)
{
    RCC_AHB4ENR |= 1u << 3;                        /* GPIODEN */
    RCC_APB1LENR |= 1u << 18;                      /* USART3EN */
    RCC_D2CCIP2R = (RCC_D2CCIP2R & ~0x7u) | 3u;    /* USART234578SEL = hsi_ker_ck (64 MHz) */
    GPIOD_MODER = (GPIOD_MODER & ~((3u << 16) | (3u << 18))) | (2u << 16) | (2u << 18);
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | (7u << 0) | (7u << 4);
    USART_BRR = (HSI_HZ + BAUD / 2u) / BAUD;
    USART_CR1 = (1u << 3) | (1u << 2) | 1u;        /* TE, RE, UE */
}

void port_init(void)
{
    caches_on();
    clock_480mhz();
    usart3_init();
    stm32_dwt_start(1);
    systick_start();
}

const char *port_board(void) { return "nucleo-h743zi"; }
