#include <amqp.h>
int main(void){return 0;}
